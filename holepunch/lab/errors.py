"""Errors of the NAT lab, one class per cause so tests can skip with the exact reason.

Rule: every message says what is wrong and how to fix it; `LabUnavailable` (and only it) means
"this machine cannot run a lab", which tests turn into `pytest.skip(str(error))`.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabError(Exception):
    """Base class of every lab error."""


class LabUnavailable(LabError):
    """This machine cannot run a lab at all (wrong OS, not root, tools missing)."""


class NotLinuxError(LabUnavailable):
    """Network namespaces and nftables exist only on Linux."""


class NotRootError(LabUnavailable):
    """Creating namespaces, veths and nftables rules needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)."""


class ToolMissingError(LabUnavailable):
    """A command-line tool the lab drives (`ip`, `nft`, ...) is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(f"'{tool}' not found; install it (Debian/Ubuntu: apt-get install {package})")
        self.tool = tool


class CommandError(LabError):
    """A command the lab ran failed; carries the command line and its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        detail = stderr.strip() or "(no error output)"
        shown = " ".join(argv)
        shown = shown if len(shown) < 300 else shown[:300] + " ..."
        detail = detail if len(detail) < 2000 else detail[:2000] + " ..."
        super().__init__(f"command failed (exit {returncode}): {shown}\n{detail}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


class VerifyError(LabError):
    """A NAT did not behave as its configured type (found by the probe)."""


class LabStateError(LabError):
    """The lab is not in a state that allows the request (not started, already closed, ...)."""
