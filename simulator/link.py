"""Links: latency, jitter, loss, duplication and reordering, all drawn from a seeded rng.

Rule: a link decides only *when* (and whether, and how many times) a packet comes out of the
other end; it never looks at the payload. Each link owns a `random.Random` seeded from the
network seed and its name, so one link's draws do not shift another's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

HELD_BACK = "held back (reordered)"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class LinkProfile:
    """How one link treats packets; the same in both directions."""

    latency: float = 0.02
    """One-way delay in seconds."""
    jitter: float = 0.0
    """Each delay is drawn uniformly from latency ± jitter (never below zero)."""
    loss: float = 0.0
    """Probability that a packet is lost."""
    duplicate: float = 0.0
    """Probability that a packet arrives twice (the copy gets its own delay)."""
    reorder: float = 0.0
    """Probability that a packet is held back `reorder_delay` more, so later ones overtake it."""
    reorder_delay: float = 0.05
    """Extra delay of a held-back packet, in seconds."""

    def __post_init__(self) -> None:
        for name in ("latency", "jitter", "reorder_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)!r}")


class Link:
    """A named link between a node and the switch above it; its profile may be changed at will."""

    __slots__ = ("name", "lower", "upper", "_profile", "rng", "fixed", "fixed_detail")

    def __init__(self, name: str, lower: str, upper: str, profile: LinkProfile, rng: random.Random) -> None:
        self.name = name
        self.lower = lower
        self.upper = upper
        self.rng = rng
        self.profile = profile

    @property
    def profile(self) -> LinkProfile:
        """How this link treats packets; assign a new `LinkProfile` to change it mid-run."""
        return self._profile

    @profile.setter
    def profile(self, profile: LinkProfile) -> None:
        self._profile = profile
        random_free = not (profile.jitter or profile.loss or profile.duplicate or profile.reorder)
        self.fixed: float | None = profile.latency if random_free else None
        """The constant delay when nothing is random (the hot path skips the rng), else None."""
        self.fixed_detail = f"delay {profile.latency:.6f} s"

    def transit(self) -> list[tuple[float, str]]:
        """The copies that come out: (delay, note) each; empty when the packet is lost.

        A duplicate's note starts with `DUPLICATE`; a copy held back also says `HELD_BACK`.
        The draws are always made in the same order (loss, delay, duplicate, copy's delay), so
        one seed gives one sequence of fates."""
        p = self.profile
        rng = self.rng
        if p.loss and rng.random() < p.loss:
            return []
        copies = [self._delay(p, rng)]
        if p.duplicate and rng.random() < p.duplicate:
            delay, note = self._delay(p, rng)
            copies.append((delay, f"{DUPLICATE}, {note}" if note else DUPLICATE))
        return copies

    @staticmethod
    def _delay(p: LinkProfile, rng: random.Random) -> tuple[float, str]:
        delay = p.latency
        if p.jitter:
            delay = max(0.0, delay + rng.uniform(-p.jitter, p.jitter))
        if p.reorder and rng.random() < p.reorder:
            return delay + p.reorder_delay, HELD_BACK
        return delay, ""

    def __repr__(self) -> str:
        return f"<Link {self.name}: {self.lower} - {self.upper} {self.profile}>"
