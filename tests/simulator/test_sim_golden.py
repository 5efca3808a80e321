"""Golden traces: a few scenarios whose whole `Trace.to_text()` is checked in.

A change in the protocol machines, the NAT model or the trace format shows up here as a diff.
When the change is intended, regenerate the files and review the diff before committing:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/simulator/test_sim_golden.py -q

Each file starts with `#` lines (the scenario and the outcome's explanation), then the trace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from holepunch.protocol import ClientConfig
from simulator import (
    FULL_CONE,
    LINUX_MASQUERADE,
    PORT_RESTRICTED_CONE,
    RESTRICTED_CONE,
    SYMMETRIC,
    quiet_period,
    run_punch,
)

GOLDEN = Path(__file__).parent / "golden"
SHORT = ClientConfig(timeout=1.0)  # failures give up after 1 s, so their traces stay short


def _punch(*args: object, **kwargs: object) -> Callable[[], tuple[str, str]]:
    def run() -> tuple[str, str]:
        outcome = run_punch(*args, **kwargs)  # type: ignore[arg-type]
        return outcome.explain(), outcome.trace.to_text()
    return run


def _quiet() -> tuple[str, str]:
    result = quiet_period(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, quiet=45.0, keepalive=False)
    return result.explain(), result.trace.to_text()


SCENARIOS: dict[str, tuple[str, Callable[[], tuple[str, str]]]] = {
    "full_cone_x_full_cone": ("run_punch(FULL_CONE, FULL_CONE)", _punch(FULL_CONE, FULL_CONE)),
    "symmetric_x_port_restricted": (
        "run_punch(SYMMETRIC, PORT_RESTRICTED_CONE, config=ClientConfig(timeout=1.0))",
        _punch(SYMMETRIC, PORT_RESTRICTED_CONE, config=SHORT)),
    "cgnat_home_x_full_cone": (
        "run_punch(PORT_RESTRICTED_CONE, FULL_CONE, cgnat=PORT_RESTRICTED_CONE)",
        _punch(PORT_RESTRICTED_CONE, FULL_CONE, cgnat=PORT_RESTRICTED_CONE)),
    "linux_early_punch_race": (
        "run_punch(LINUX_MASQUERADE, LINUX_MASQUERADE, config=ClientConfig(extension=False, "
        "timeout=1.0), start_gap=0.15)",
        _punch(LINUX_MASQUERADE, LINUX_MASQUERADE, config=ClientConfig(extension=False, timeout=1.0),
               start_gap=0.15)),
    "lossy_jittery": (
        "run_punch(RESTRICTED_CONE, PORT_RESTRICTED_CONE, seed=1, loss=0.1, jitter=0.005, "
        "duplicate=0.05, reorder=0.05)",
        _punch(RESTRICTED_CONE, PORT_RESTRICTED_CONE, seed=1, loss=0.1, jitter=0.005,
               duplicate=0.05, reorder=0.05)),
    "quiet_expiry": ("quiet_period(PORT_RESTRICTED_CONE, PORT_RESTRICTED_CONE, quiet=45.0, "
                     "keepalive=False)", _quiet),
}


def render(name: str) -> str:
    """The golden text of one scenario: header comments, then the trace."""
    call, run = SCENARIOS[name]
    explanation, trace = run()
    return f"# {call}\n# {explanation}\n{trace}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_trace_matches_the_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.txt"
    text = render(name)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} changed: review, then regenerate with UPDATE_GOLDEN=1"


def test_rendering_twice_gives_the_same_text() -> None:
    assert render("lossy_jittery") == render("lossy_jittery")
