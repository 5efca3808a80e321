"""Impairment of the lab's "internet": loss in nftables, or a userspace relay for the rest.

Rule: the kernel here has no `sch_netem`, so random loss alone is an nftables rule on the
internet bridge (`numgen random`), and delay, jitter, reordering and duplication replace the
bridge by `relay.py`, a small userspace switch that also applies the loss. Every frame that
crosses the internet is impaired once, in each direction independently.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import netns
from .errors import LabError

if TYPE_CHECKING:
    from .layout import Layout

RELAY = str(Path(__file__).with_name("relay.py"))
RELAYED = ("delay", "jitter", "duplicate", "reorder")
"""Settings that need the userspace relay (loss alone does not)."""


@dataclass(frozen=True)
class Impairment:
    """What the internet does to each IPv4 frame (times in seconds, the rest fractions)."""

    delay: float = 0.0
    jitter: float = 0.0
    """Each frame's delay is uniform in delay +/- jitter (so frames reorder, as with netem)."""
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    """Fraction of frames sent at once, overtaking the delayed ones (netem's `reorder`)."""
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 <= self.delay <= 10.0 or not 0.0 <= self.jitter <= 10.0:
            raise ValueError("delay and jitter must be 0..10 seconds")

    @property
    def relayed(self) -> bool:
        """True when the bridge must be replaced by the userspace relay."""
        return any(getattr(self, name) for name in RELAYED)

    def relay_settings(self) -> dict[str, float]:
        """The non-zero settings besides loss, as stored in the lab's layout."""
        fields = {"delay": self.delay, "jitter": self.jitter, "duplicate": self.duplicate,
                  "reorder": self.reorder}
        kept: dict[str, float] = {k: v for k, v in fields.items() if v}
        if self.seed is not None and kept:
            kept["seed"] = self.seed
        return kept


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|us)?\s*$")


def parse_duration(text: str) -> float:
    """"20ms", "0.02s", "0.02" -> seconds; ValueError saying the accepted forms."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write e.g. 20ms, 0.5s or 0.02")
    scale = {"ms": 1e-3, "us": 1e-6, "s": 1.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) * scale


def parse_fraction(text: str) -> float:
    """"5%" or "0.05" -> 0.05; ValueError unless it is in [0, 1)."""
    body = text.strip()
    try:
        value = float(body[:-1]) / 100 if body.endswith("%") else float(body)
    except ValueError:
        raise ValueError(f"{text!r} is not a fraction; write e.g. 5% or 0.05") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{text!r} must be at least 0 and below 100%")
    return value


def relay_ports(layout: Layout) -> list[str]:
    """The internet-side interface of every veth: the relay's switch ports."""
    from .layout import veths

    return [v.name_a for v in veths(layout) if v.namespace_a == layout.internet_namespace]


def start_relay(layout: Layout) -> None:
    """Start the relay in the internet namespace and wait until it has opened its ports; it
    lives as long as the namespace (teardown kills it with every other lab process)."""
    settings = {**layout.impairment, "loss": layout.loss}
    argv = [sys.executable, RELAY, "--ports", ",".join(relay_ports(layout))]
    for name in ("delay", "jitter", "loss", "duplicate", "reorder"):
        argv += [f"--{name}", str(settings.get(name, 0.0))]
    if "seed" in settings:
        argv += ["--seed", str(int(settings["seed"]))]
    proc = subprocess.Popen(netns.exec_argv(layout.internet_namespace, argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        _, err = proc.communicate()
        raise LabError(f"the impairment relay did not start: {err.strip()}")
    proc.stdout.close()
