"""The course's structure: every lesson is thin, ends with Summary and Exercises, has solutions.

nbmake runs every notebook (see the Makefile); this file checks what running cannot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
MAX_CODE_LINES = 15


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_there_are_lessons() -> None:
    assert len(LESSONS) >= 7, "lessons 00 to 06 must exist"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name}: strip outputs before committing"
            )


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: p.name)
def test_kernelspec_is_python3(path: Path) -> None:
    meta = json.loads(path.read_text())["metadata"]
    assert meta.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_structure(path: Path) -> None:
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# "), "a title first"
    headings = [line for c in cells if c["cell_type"] == "markdown" for line in _source(c).splitlines()]
    assert "## Summary" in headings and "## Exercises" in headings
    assert headings.index("## Summary") < headings.index("## Exercises")
    for cell in cells:
        if cell["cell_type"] == "code":
            src = _source(cell)
            assert not re.search(r"^\s*class\s", src, re.M), f"{path.name}: classes belong in the library"
            assert len(src.splitlines()) <= MAX_CODE_LINES, f"{path.name}: code cell over {MAX_CODE_LINES} lines"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_lesson_has_a_solutions_notebook(path: Path) -> None:
    solution = ROOT / "notebooks" / "solutions" / path.name.replace(".ipynb", "-solutions.ipynb")
    assert solution.exists(), f"missing {solution.relative_to(ROOT)}"
    checks = [c for c in _cells(solution) if c["cell_type"] == "code" and "assert check_" in _source(c)]
    assert checks, f"{solution.name} must assert every check function"
