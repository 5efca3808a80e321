"""The birthday explorer, headless: sliders move the formula, the button runs real simulated trials."""

from __future__ import annotations

import pytest

from holepunch.protocol.techniques.probability import birthday_probability
from simulator.techniques import birthday_trials
from simulator.widgets import birthday_explorer

PNG = b"\x89PNG\r\n\x1a\n"


def test_starts_with_the_formula_and_no_run() -> None:
    explorer = birthday_explorer(k=256, m=256, trials=5)
    assert explorer.last is None and "run trials" in explorer.result.value
    assert "exact 1-C(N-k,m)/C(N,m) = 63.9 %" in explorer.formula.value
    assert "1-exp(-k*m/65536) = 63.2 %" in explorer.formula.value
    assert bytes(explorer.figure_image.value).startswith(PNG)


def test_sliders_redraw_the_formula_without_running() -> None:
    explorer = birthday_explorer(k=256, m=256, trials=5)
    before = bytes(explorer.figure_image.value)
    explorer.k.value, explorer.m.value = 64, 512
    expected = 100 * birthday_probability(64, 512)
    assert "k=64 sockets x m=512 probes" in explorer.formula.value
    assert f"= {expected:.1f} %" in explorer.formula.value
    assert explorer.last is None and bytes(explorer.figure_image.value) != before


def test_the_button_runs_the_same_trials_as_the_library() -> None:
    explorer = birthday_explorer(k=128, m=128, trials=8)
    explorer.run_button.click()
    figure = explorer.last
    assert figure is not None and (figure.k, figure.m, figure.runs) == (128, 128, 8)
    assert figure == birthday_trials(128, 128, range(8))  # deterministic per seed
    assert f"{figure.successes}/8 seeds connected" in explorer.result.value
    assert not explorer.run_button.disabled


def test_extreme_sliders_bracket_the_chance() -> None:
    explorer = birthday_explorer(k=1, m=1, trials=3)
    assert explorer.run().successes == 0  # 1 probe at 1 of 64,512 ports
    explorer.k.value, explorer.m.value = 1024, 1024
    assert explorer.run().successes == 3  # exact chance over 99.99 %


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"m": 5000}, {"trials": 0}, {"k": 2.5}, {"m": True}])
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(ValueError, match="must be an int"):
        birthday_explorer(**kwargs)
