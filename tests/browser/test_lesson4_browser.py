"""Lesson 4 in a real browser: JupyterLab and Debian's Chromium, driven by Playwright for Python.

Runs every cell from the Run menu, waits for the punch stepper, clicks "next ▶" and checks that
the step label and the timeline picture both change, which proves the widget round trip through
the kernel works. JupyterLab runs with autosave off and isolated settings, so the committed
notebook is never written to; the test checks that too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LESSON = "04-udp-hole-punching.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT = 60.0
"""Seconds JupyterLab may take to accept connections."""
UI_TIMEOUT_MS = 120_000
"""Milliseconds for the page, the kernel and the run of every cell (about 10 s on this machine)."""
SETTINGS = {
    # Autosave off: running the cells must never write outputs into the committed notebook.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # No news or update checks: the test makes no requests beyond localhost.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def _missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install playwright; no browser download needed)"
    return None


MISSING = _missing()
pytestmark = [pytest.mark.browser, pytest.mark.timeout(240),
              pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not accept connections on port {port} within {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM JupyterLab (it shuts its kernels down), then SIGKILL its process group if need be."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created: JupyterLab and its kernels
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab serving notebooks/ on a free port, without token; yields its base URL."""
    settings = tmp_path / "settings"
    for name, values in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    port = _free_port()
    jupyter = Path(sys.executable).parent / "jupyter"
    command = [str(jupyter)] if jupyter.exists() else [sys.executable, "-m", "jupyter"]
    command += ["lab", "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={NOTEBOOKS}"]
    log = tmp_path / "jupyter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                start_new_session=True)
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _wait_for_idle_kernel(page: Page, timeout_ms: int) -> None:
    """Wait until the notebook's execution indicator reports an idle kernel."""
    page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for(
        state="attached", timeout=timeout_ms)


def _run_all_cells(page: Page) -> None:
    """Run > Run All Cells, through the menus as a learner would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _open_and_run_all(page: Page, url: str) -> None:
    """Open the lesson, wait for its kernel, then Run > Run All Cells."""
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{url}/lab/tree/{LESSON}", wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel").first.wait_for(state="visible")
    _wait_for_idle_kernel(page, UI_TIMEOUT_MS)
    page.wait_for_timeout(2000)  # let the kernel settle before running (browser-test-notes)
    _run_all_cells(page)


def _step_once(page: Page) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """Click the stepper's "next ▶" once; (label, picture src) before and after, screenshot saved."""
    from playwright.sync_api import expect

    next_button = page.locator("button", has_text="next ▶").first
    try:
        next_button.wait_for(state="visible", timeout=UI_TIMEOUT_MS // 2)
    except Exception:
        # A fresh environment's first kernel can miss the first Run All (seen once on a clean
        # CI clone): keep a picture of that state, then run everything once more.
        page.screenshot(path=str(ARTIFACTS / "lesson4-first-run-all.png"))
        _run_all_cells(page)
        next_button.wait_for(state="visible")
    stepper = next_button.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][2]")
    label = stepper.get_by_text(re.compile(r"^step \d+ of \d+"))
    picture = stepper.locator("img").first
    expect(label).to_have_text(re.compile(r"^step 1 of \d+"))
    expect(picture).to_have_attribute("src", re.compile(r"^(blob|data):"))
    before = (label.text_content() or "", picture.get_attribute("src"))
    next_button.scroll_into_view_if_needed()
    # The kernel may still be running the later cells: the click's message waits in its queue,
    # so the expectations below wait (up to UI_TIMEOUT_MS) rather than the test guessing when.
    next_button.click()
    expect(label).to_have_text(re.compile(r"^step 2 of \d+"))
    expect(picture).not_to_have_attribute("src", before[1] or "")
    after = (label.text_content() or "", picture.get_attribute("src"))
    stepper.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)  # let the scroll and the new picture settle
    page.screenshot(path=str(ARTIFACTS / "lesson4.png"))
    return before, after


def test_lesson4_stepper_steps_in_the_browser(jupyter_lab: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    notebook = NOTEBOOKS / LESSON
    committed = notebook.read_bytes()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                _open_and_run_all(page, jupyter_lab)
                before, after = _step_once(page)
            finally:
                browser.close()
    finally:
        if notebook.read_bytes() != committed:  # never leave outputs in the committed notebook
            notebook.write_bytes(committed)
            pytest.fail(f"JupyterLab wrote to {notebook.name}; restored the committed version")
    assert before[0].startswith("step 1 of") and after[0].startswith("step 2 of")
    assert after[1] != before[1], "the timeline picture did not change"
    assert (ARTIFACTS / "lesson4.png").stat().st_size > 0
