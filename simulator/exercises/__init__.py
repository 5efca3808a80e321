"""Check functions for the course's exercises, one module per lesson.

Rule: a check never raises on a wrong or missing answer; it returns `Feedback`, which is falsy
when the answer is not right yet and says why. Lesson notebooks therefore run clean with the
exercises unsolved, and solutions notebooks `assert` every check.
"""

from __future__ import annotations

from dataclasses import dataclass


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
