"""`holepunch lab up / status / run / down` across separate calls, as a person would use it.

Rule: a private state directory and the test prefix, so a lab someone left up is never touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from holepunch.lab import Layout, netns
from holepunch.lab.cli import lab_main

pytestmark = pytest.mark.root


def test_up_run_status_down(lab_env: None, prefix: str, tmp_path: Path,
                            capfd: pytest.CaptureFixture[str]) -> None:
    state = ["--state-dir", str(tmp_path)]
    assert lab_main([*state, "up", "--site", "A=port-restricted", "--site", "B=symmetric",
                     "--prefix", prefix, "--loss", "1%"]) == 0
    out = capfd.readouterr().out
    assert "verified A: EIM + APDF, preserving ports" in out
    assert "verified B: APDM + APDF, random ports" in out
    layout = Layout.from_json((tmp_path / "default.json").read_text())
    try:
        assert set(layout.namespaces()) <= set(netns.list_namespaces())
        assert lab_main([*state, "up", "--site", "A=none", "--prefix", prefix]) == 1
        assert "already up" in capfd.readouterr().err
        assert lab_main([*state, "run", "A", "--", "ip", "-o", "-4", "addr"]) == 0
        assert "10.0.1.10/24" in capfd.readouterr().out
        assert lab_main([*state, "run", "B:nat", "--", "sh", "-c", "exit 7"]) == 7
        assert lab_main([*state, "status"]) == 0
        assert "running" in capfd.readouterr().out
    finally:
        assert lab_main([*state, "down"]) == 0
    assert not set(layout.namespaces()) & set(netns.list_namespaces())
    assert not (tmp_path / "default.json").exists()
    assert lab_main([*state, "down"]) == 0
    assert "no lab 'default' is up" in capfd.readouterr().out
