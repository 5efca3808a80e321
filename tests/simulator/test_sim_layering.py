"""Layering: the simulator is light to import and never reimplements the protocol.

* `import simulator` (in a fresh interpreter) loads no asyncio, socket, plotting, widget or
  networkx module.
* Nothing under `holepunch/` imports `simulator`.
* No simulator core module builds protocol messages or knows the handshake: no `b"SYN"` or
  `b"ACK"` literals, no import of `holepunch.protocol.handshake`, of message builders
  (`SYN`, `ACK`, `encode_ext`, `ExtRegister`, `encode_peer_list`) or of private names.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_MODULES = ("asyncio", "socket", "matplotlib", "ipywidgets", "networkx", "time")
FORBIDDEN_NAMES = {"SYN", "ACK", "encode_ext", "ExtRegister", "ExtLeave", "encode_peer_list"}
# The core: every module directly in simulator/ (simulator/viz is the drawing layer, not core).
CORE = sorted((ROOT / "simulator").glob("*.py"))


def test_importing_simulator_loads_no_heavy_or_io_module() -> None:
    code = (
        "import json, sys; import simulator; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_MODULES[:-1]!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(result.stdout) == []


def test_drawing_the_topology_imports_networkx_only_when_asked() -> None:
    code = (
        "import sys, simulator; before = 'networkx' in sys.modules; "
        "simulator.two_peers(simulator.FULL_CONE, simulator.SYMMETRIC).graph(); "
        "print(before, 'networkx' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["False", "True"]


def _imports(tree: ast.AST) -> list[tuple[str, list[str], bool]]:
    """(module, imported names, at module level?) for every import statement."""
    found = []
    top = {id(node) for node in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = ("." * node.level) + (node.module or "")
            found.append((module, [alias.name for alias in node.names], id(node) in top))
    return found


def test_nothing_under_holepunch_imports_simulator() -> None:
    offenders = []
    for path in sorted((ROOT / "holepunch").rglob("*.py")):
        for module, _, _ in _imports(ast.parse(path.read_text(), str(path))):
            if module == "simulator" or module.startswith("simulator."):
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_simulator_core_modules_import_nothing_heavy_at_module_level(path: Path) -> None:
    for module, _, top_level in _imports(ast.parse(path.read_text(), str(path))):
        root = module.split(".")[0]
        if root == "networkx":
            assert not top_level, f"{path.name} imports networkx at module level"
        else:
            assert root not in FORBIDDEN_MODULES, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_simulator_core_modules_contain_no_protocol_logic(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    literals = [node.value for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, bytes)]
    assert not [b for b in literals if b.upper() in (b"SYN", b"ACK")], "handshake bytes in the simulator"
    for module, names, _ in _imports(tree):
        assert "handshake" not in module, f"{path.name} imports {module}"
        if module.startswith("holepunch"):
            bad = [n for n in names if n in FORBIDDEN_NAMES or n.startswith("_")]
            assert bad == [], f"{path.name} imports protocol internals {bad} from {module}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_simulator_core_modules_use_only_injected_random_generators(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    calls = [node.attr for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
             and node.value.id == "random" and node.attr != "Random"]
    assert calls == [], f"{path.name} uses module-level random.{calls}"


def test_the_core_module_list_is_not_empty() -> None:
    assert {p.name for p in CORE} >= {"scheduler.py", "nat.py", "network.py", "driver.py", "scenarios.py"}
