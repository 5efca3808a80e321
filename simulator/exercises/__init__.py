"""Check functions for the course's exercises, one module per lesson.

Rule: a check never raises on a wrong or missing answer; it returns `Feedback`, which is falsy
when the answer is not right yet and says why. Lesson notebooks therefore run clean with the
exercises unsolved, and solutions notebooks `assert` every check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..nat import NatBehavior

Pair = tuple[str, str]


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: `ok`, and a message for the learner."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return ("✔ " if self.ok else "✘ ") + self.message

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#b35900"
        return f'<p style="color:{colour}"><b>{"✔" if self.ok else "✘"}</b> {self.message}</p>'


def right(message: str = "Correct.") -> Feedback:
    """A passing verdict."""
    return Feedback(True, message)


def not_yet(message: str) -> Feedback:
    """A failing verdict with a hint; `None` answers get this too."""
    return Feedback(False, message)


UNANSWERED = not_yet("Not answered yet: replace the ... with your answer and run the cell again.")


def preset_name(item: Any) -> str:
    """A preset given as a NatBehavior or its name, as its upper-case name."""
    return item.name if isinstance(item, NatBehavior) else str(item).strip().upper()


def name_pairs(answer: Any) -> set[Pair] | None:
    """The answer as a set of (NAT name, NAT name) pairs, or None if it is not a collection of pairs."""
    if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
        return None
    pairs: set[Pair] = set()
    for item in answer:
        if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
            return None
        parts = list(item)
        if len(parts) != 2:
            return None
        pairs.add((preset_name(parts[0]), preset_name(parts[1])))
    return pairs
