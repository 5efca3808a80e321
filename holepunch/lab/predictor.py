"""Where `holepunch lab grid` and `lab trace` get the simulator's predictions: an installed plugin.

Rule: `holepunch` never imports the simulator (the layering rule: the simulator builds on the
library, not the other way round). The lab declares what it needs from a model, `Predictor`,
and finds an implementation through the `holepunch.lab.predictors` entry-point group (the
standard plugin mechanism, PyPA "Entry points specification"); the simulator's package
registers `simulator.lab_compare` there (pyproject.toml). Without one, the commands that
compare say so and stop before building any lab; everything else in the lab works alone.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from .errors import LabError
from .results import RealGrid, Trial

GROUP = "holepunch.lab.predictors"
"""The entry-point group a model registers its predictor module (or object) under."""


class Prediction(Protocol):
    """What a model says about one trial."""

    @property
    def connected(self) -> bool: ...

    @property
    def trace(self) -> Any: ...


class Comparison(Protocol):
    """A real grid beside a model's: cell by cell, with the disagreements listed."""

    @property
    def disagreements(self) -> list[tuple[str, str]]: ...

    def to_text(self) -> str: ...


class Predictor(Protocol):
    """What the lab's comparing commands need from a model (options: delay, jitter, loss, timeout)."""

    def predict_trial(self, trial: Trial, **options: Any) -> Prediction: ...

    def unresolved(self, trial: Trial, **options: Any) -> bool: ...

    def compare(self, real: RealGrid, **options: Any) -> Comparison: ...


def find_predictor(group: str = GROUP) -> Predictor:
    """The installed predictor of `group` (the first by name if several), or a `LabError` that
    says how to get one."""
    found = sorted(entry_points(group=group), key=lambda ep: ep.name)
    if not found:
        raise LabError(f"comparing with the simulator needs it installed, and no predictor is registered "
                       f"under the {group!r} entry points; install the repository with "
                       "'pip install -e .' (it registers simulator.lab_compare)")
    entry = found[0]
    try:
        loaded: Predictor = entry.load()
    except ImportError as exc:
        raise LabError(f"comparing with the simulator needs it installed: the registered predictor "
                       f"{entry.value!r} cannot be imported ({exc}); install the repository with "
                       "'pip install -e .'") from exc
    missing = [name for name in ("predict_trial", "unresolved", "compare") if not callable(getattr(loaded, name, None))]
    if missing:
        raise LabError(f"the registered predictor {entry.value!r} lacks {', '.join(missing)}")
    return loaded

