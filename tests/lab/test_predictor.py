"""The lab finds the simulator's predictions as an installed plugin, never by importing it.

Rule: no root needed. `holepunch lab grid` and `lab trace` load the predictor registered under
the `holepunch.lab.predictors` entry point (pyproject.toml registers `simulator.lab_compare`);
without one they stop with a clear message before building anything. Importing the comparison
loads none of the lab's sockets or event loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import simulator.lab_compare
from holepunch.lab import LabError
from holepunch.lab.predictor import GROUP, find_predictor

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_predictor_is_the_simulators_lab_compare() -> None:
    predictor = find_predictor()
    assert predictor is simulator.lab_compare
    assert GROUP == "holepunch.lab.predictors"


def test_a_group_with_no_predictor_is_a_clear_error() -> None:
    with pytest.raises(LabError, match="no predictor is registered under the 'holepunch.lab.nothing' entry points"):
        find_predictor("holepunch.lab.nothing")


@pytest.mark.parametrize("argv", [["grid", "--types", "none"], ["trace", "none", "none"]])
def test_without_the_simulator_grid_and_trace_say_so_and_build_nothing(argv: list[str]) -> None:
    code = ("import sys; sys.modules['simulator'] = None  # as if the simulator were not installed\n"
            "from holepunch.lab.cli import lab_main\n"
            f"sys.exit(lab_main({argv!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("holepunch lab: error: comparing with the simulator needs it installed")
    assert "'simulator.lab_compare' cannot be imported" in done.stderr and "pip install -e ." in done.stderr


def test_importing_the_comparison_loads_no_socket_or_event_loop() -> None:
    code = ("import json, sys; import simulator.lab_compare; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('asyncio', 'socket', 'matplotlib', 'ipywidgets', 'networkx'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(done.stdout) == []
