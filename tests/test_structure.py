"""The shape of the code a newcomer takes over: no import cycle (module-level imports,
``TYPE_CHECKING`` ones included), and ``import otpy`` has no side effects."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "otpy": "otpy",
    "actors": "otpy.actors",
    "supervision": "otpy.supervision",
    "resilience": "otpy.resilience",
}


def _modules() -> dict[str, Path]:
    """Every module of the installed package by its dotted name."""
    modules: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The otpy modules ``name`` imports anywhere in its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")
                if path.name != "__init__.py":
                    package.pop()
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            for alias in node.names:  # a submodule, else a name defined in ``base``
                full = f"{base}.{alias.name}"
                targets.append(full if full in modules else base)
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_import_otpy_has_no_side_effects() -> None:
    """Importing the front door starts nothing, registers nothing, configures no logging
    and loads no subpackage (each name loads on first use)."""
    code = """
import logging, sys, threading
before_threads = threading.active_count()
handlers = {name: list(logging.getLogger(name).handlers) for name in ("", "otpy", "pykka")}
import otpy
assert threading.active_count() == before_threads
assert {name: list(logging.getLogger(name).handlers) for name in handlers} == handlers
loaded = sorted(m for m in sys.modules if m.startswith("otpy."))
assert loaded == [], loaded
assert otpy.GenServer.__name__ == "GenServer"  # and the names still resolve
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# The layers (docs/architecture.md, "Import rules"): who may import whom.
_SUPERVISION_MAY = ("otpy.supervision", "otpy.errors", "otpy.clock")
_RESILIENCE_MAY = (
    "otpy.resilience", "otpy.errors", "otpy.clock", "otpy.telemetry", "otpy.redaction",
)  # fmt: skip
_MAY_IMPORT_ACTORS = ("otpy", "otpy.runtime", "otpy.__main__", "otpy.demo", "otpy._demo_runtime")


def _allowed(importer: str, target: str) -> bool:
    """Whether module ``importer`` may import module ``target``."""
    if importer.startswith("otpy.supervision"):
        return target.startswith(_SUPERVISION_MAY)
    if importer.startswith("otpy.resilience"):
        return target.startswith(_RESILIENCE_MAY)
    if importer in _MAY_IMPORT_ACTORS or importer.startswith(
        ("otpy.actors", "otpy._cli", "otpy.web")
    ):
        return True
    return not target.startswith("otpy.actors")


def test_the_layers_import_only_what_they_may() -> None:
    modules = _modules()
    broken = [
        f"{name} -> {target}"
        for name, path in sorted(modules.items())
        for target in sorted(_imports(name, path, modules))
        if not _allowed(name, target)
    ]
    assert broken == []


def test_the_architecture_document_names_real_public_names() -> None:
    """Every name in docs/architecture.md's "Public API by package" table is exported by
    the package it is listed under, and every package of otpy appears in the table."""
    import importlib
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("## Public API by package") :]
    listed: set[str] = set()
    for package, names in re.findall(r"^\| `(otpy[\w.]*)` \| (.*) \|$", table, re.M):
        listed.add(package)
        module = importlib.import_module(package)
        for name in re.findall(r"`(\w+)`", names):
            if name in {"fake_anthropic", "fake_gemini", "compliance"}:
                importlib.import_module(f"{package}.{name}")
            else:
                assert hasattr(module, name), f"{package}.{name} (docs/architecture.md)"
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert packages - listed <= {"otpy.testing.compliance", "otpy.steps.llm"} | {
        p for p in packages if p.count(".") > 1
    }


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: count
        for name, path in _modules().items()
        if (count := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


def test_no_package_imports_another_packages_private_modules() -> None:
    """``otpy.a._b`` is imported only inside ``otpy.a``; other packages use what ``otpy.a``
    exports (its ``__init__``)."""
    modules = _modules()
    reaching = []
    for name, path in sorted(modules.items()):
        for target in sorted(_imports(name, path, modules)):
            parts = target.split(".")
            private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
            if private is None or parts[private].startswith("__"):
                continue
            owner = ".".join(parts[:private])
            if name != owner and not name.startswith(owner + "."):
                reaching.append(f"{name} -> {target}")
    assert reaching == []
