"""Thin wrappers around `ip`, `ip netns exec` and `/proc/sys`, run as subprocesses.

Rule: this is the only module that starts system tools; it knows nothing about NATs or labs.
Commands are batched (`ip -batch -`, one shell per namespace for sysctls) because starting a
process costs more than the work it does, and a failed command raises `CommandError` with
the tool's own stderr.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence

from .errors import CommandError, NotLinuxError, NotRootError, ToolMissingError

PACKAGES = {"ip": "iproute2", "nft": "nftables", "conntrack": "conntrack", "sh": "dash"}
"""Tool name -> the Debian package that provides it (for the error message)."""

_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")  # sudo's PATH may lack sbin


def tool(name: str) -> str:
    """The absolute path of a tool, or `ToolMissingError` naming the package to install."""
    found = shutil.which(name)
    if found is None:
        found = next((f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise ToolMissingError(name, PACKAGES.get(name, name))
    return found


def tool_available(name: str) -> bool:
    """True if `tool(name)` would find it."""
    try:
        tool(name)
    except ToolMissingError:
        return False
    return True


def check_environment(tools: Iterable[str] = ("ip", "nft", "sh")) -> None:
    """Raise the `LabUnavailable` subclass that explains why this machine cannot run a lab."""
    if not sys.platform.startswith("linux"):
        raise NotLinuxError(f"the NAT lab needs Linux network namespaces; this is {sys.platform}")
    if os.geteuid() != 0:
        raise NotRootError("the NAT lab needs root to create namespaces and nftables rules; "
                           "run it with sudo (or as root in a VM)")
    for name in tools:
        tool(name)


def run(argv: Sequence[str], *, input: str | None = None, timeout: float = 20.0,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; `CommandError` (with its stderr) if `check` and it failed."""
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, f"timed out after {timeout:g} s") from exc
    if check and done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stderr)
    return done


def exec_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    """The command line that runs `argv` inside `namespace`."""
    return [tool("ip"), "netns", "exec", namespace, *argv]


def ip_batch(lines: Sequence[str], namespace: str | None = None) -> None:
    """Run `ip` commands (one per line, without the leading `ip`) in one process."""
    if not lines:
        return
    ns = ["-n", namespace] if namespace else []
    run([tool("ip"), *ns, "-batch", "-"], input="\n".join(lines) + "\n")


def list_namespaces() -> list[str]:
    """Names of the named network namespaces (`ip netns list`, which prints "name (id: 3)")."""
    out = run([tool("ip"), "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def add_namespaces(names: Sequence[str]) -> None:
    """Create named network namespaces in one `ip -batch` run."""
    ip_batch([f"netns add {name}" for name in names])


def sysctl_lines(settings: Mapping[str, str | int], *, optional: bool = False) -> list[str]:
    """Shell lines writing /proc/sys; an optional key that does not exist here is skipped."""
    lines = []
    for key, value in settings.items():
        path = shlex.quote("/proc/sys/" + key.replace(".", "/"))
        if optional:
            lines.append(f"[ -e {path} ] && echo {value} > {path}")
        else:
            lines.append(f"echo {value} > {path} || exit 1")
    return lines


def configure(namespace: str, sysctls: Mapping[str, str | int], optional: Mapping[str, str | int],
              per_interface: Mapping[str, str | int], ip_lines: Sequence[str]) -> None:
    """Write sysctls (`per_interface` keys such as "ipv4.rp_filter" on every interface, since
    the kernel uses the larger of "all" and the interface's value), then run `ip` commands."""
    script = [*sysctl_lines(sysctls), *sysctl_lines(optional, optional=True)]
    for leaf, value in per_interface.items():
        family, name = leaf.split(".")
        script.append(f"for p in /proc/sys/net/{family}/conf/*/{name}; do echo {value} > $p; done")
    script.append(f"exec {shlex.quote(tool('ip'))} -batch -")
    run(exec_argv(namespace, [tool("sh"), "-c", "\n".join(script)]),
        input="\n".join(ip_lines) + "\n")


def read_sysctl(namespace: str, key: str) -> str:
    """Read one sysctl inside a namespace (tests use it to check per-namespace settings)."""
    path = "/proc/sys/" + key.replace(".", "/")
    return run(exec_argv(namespace, [tool("sh"), "-c", f"cat {shlex.quote(path)}"])).stdout.strip()


def namespace_pids(namespace: str) -> list[int]:
    """Processes whose network namespace is `namespace` (`ip netns pids`)."""
    done = run([tool("ip"), "netns", "pids", namespace], check=False)
    return [int(word) for word in done.stdout.split() if word.isdigit()]


def kill_namespace_processes(namespace: str, wait: float = 2.0) -> None:
    """SIGKILL every process in the namespace and wait until none is left."""
    deadline = time.monotonic() + wait
    while True:
        pids = namespace_pids(namespace)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            return  # a process in uninterruptible sleep; the namespace dies with it
        time.sleep(0.01)


def delete_namespace(namespace: str) -> None:
    """Kill the namespace's processes and delete it (its veths and nft tables go with it)."""
    kill_namespace_processes(namespace)
    run([tool("ip"), "netns", "delete", namespace], check=False)


def delete_namespaces(names: Iterable[str]) -> None:
    """Delete several namespaces, processes first, then the namespaces in one `ip -batch`."""
    names = list(names)
    for name in names:
        kill_namespace_processes(name)
    existing = set(list_namespaces())
    lines = [f"netns delete {name}" for name in names if name in existing]
    if lines:
        run([tool("ip"), "-force", "-batch", "-"], input="\n".join(lines) + "\n", check=False)
