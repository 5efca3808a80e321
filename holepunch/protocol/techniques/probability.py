"""The birthday-paradox figures behind birthday probing: pure arithmetic, no state.

Rule: the hard side holds `k` open mappings among `space` ports; the easy side probes `m`
distinct ports drawn at random. The pair connects when one probe lands on an open mapping:
P = 1 - C(space - k, m) / C(space, m), about 1 - exp(-k*m/space) when k and m are small
against `space` (256 x 256 over 65,536 ports: 63 %; over the 64,512 ports 1024-65535: 64 %).
"""

from __future__ import annotations

import math


def birthday_probability(k: int, m: int, space: int = 65536, *, exact: bool = False) -> float:
    """Chance that `m` distinct random probes hit one of `k` open ports out of `space`.

    The default is the textbook approximation 1 - exp(-k*m/space); `exact=True` gives the
    hypergeometric value 1 - C(space-k, m)/C(space, m) (probes drawn without repetition).
    """
    _check(k, m, space)
    if not exact:
        return 1.0 - math.exp(-k * m / space)
    if k + m > space:
        return 1.0  # more probes than closed ports: one must hit
    # log C(space-k, m) - log C(space, m), with lgamma so that 65,536-port spaces stay exact
    miss = (math.lgamma(space - k + 1) - math.lgamma(space - k - m + 1)
            - math.lgamma(space + 1) + math.lgamma(space - m + 1))
    return 1.0 - math.exp(miss)


def probes_needed(probability: float, k: int, space: int = 65536) -> int:
    """Probes the easy side needs for `probability` against `k` open ports (approximation)."""
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"probability must be in [0, 1), got {probability!r}")
    _check(k, 0, space)
    if k == 0:
        raise ValueError("with no open port no number of probes succeeds")
    return math.ceil(-space * math.log1p(-probability) / k)


def _check(k: int, m: int, space: int) -> None:
    for name, value in (("k", k), ("m", m), ("space", space)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if space <= 0:
        raise ValueError(f"space must be positive, got {space}")
    if not 0 <= k <= space or not 0 <= m <= space:
        raise ValueError(f"k and m must be within 0..space ({space}), got k={k}, m={m}")
