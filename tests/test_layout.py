"""The code's layout as a specification: which package may import which (docs/architecture.md).

Read from the source with `ast` (nothing is imported): every `import` and `from ... import`, at
module level or inside a function, is an edge from the module that writes it to the module it
names (`from engine.toon import render` names `engine.toon.render`).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "avatarcam", "ui")
# Where a live stream starts: the app's session (CLI `run` and the tray app), the engine's own entry
# point, the app's window. Everything these reach is runtime and must not need the tools, the
# training code or the generated training/evaluation clips.
RUNTIME_ENTRIES = ("avatarcam.session", "engine.stream", "ui.app")
NOT_RUNTIME = ("engine.tools", "engine.train", "engine.clips")
MAX_CLASS_LINES = 250   # an app class longer than this holds more than one role: split it


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` refers to: itself, or its longest prefix that is a module of ours."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            named.add(source)
            named.update(f"{source}.{alias.name}" for alias in node.names)
    found = {_resolve(n, modules) for n in named}
    return {m for m in found if m and m != module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _reachable(graph: dict[str, set[str]], start: tuple[str, ...]) -> dict[str, str]:
    """Every module reachable from `start`, each with the module that first imported it."""
    seen = {s: "" for s in start}
    todo = list(start)
    while todo:
        v = todo.pop()
        for w in sorted(graph.get(v, ())):
            if w not in seen:
                seen[w] = v
                todo.append(w)
    return seen


def test_no_module_imports_itself_back_through_others(graph):
    assert _cycles(graph) == []


def test_the_app_never_imports_its_ui(graph):
    assert {(m, d) for m, deps in graph.items() if _under(m, "avatarcam") for d in deps if _under(d, "ui")} == set()


def test_only_training_imports_training(graph):
    assert {(m, d) for m, deps in graph.items() if not _under(m, "engine.train")
            for d in deps if _under(d, "engine.train")} == set()


def test_the_engine_never_imports_the_app_or_the_ui(graph):
    assert {(m, d) for m, deps in graph.items() if _under(m, "engine")
            for d in deps if _under(d, "avatarcam") or _under(d, "ui")} == set()


def test_the_streaming_path_imports_no_tools_training_or_clips(graph):
    reached = _reachable(graph, RUNTIME_ENTRIES)
    wrong = {m: reached[m] for m in reached if any(_under(m, p) for p in NOT_RUNTIME)}
    assert wrong == {}, "module: imported by"


def test_no_app_class_grows_past_one_role():
    lengths = {f"{_module_name(path)}.{node.name}": node.end_lineno - node.lineno + 1
               for pkg in ("avatarcam", "ui") for path in sorted((ROOT / pkg).rglob("*.py"))
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)}
    assert {name: n for name, n in lengths.items() if n > MAX_CLASS_LINES} == {}


def test_the_checks_see_the_imports_they_judge(graph):
    """Guards the reader: relative, nested and from-package imports all become edges."""
    assert "engine.config" in graph["engine.model"]                      # `from .config import ModelConfig`
    assert "engine.codecs.autoencoder" in graph["engine.codecs.decoders"]  # imported inside a method
    assert "engine.toon.identity" in graph["engine.toon"]                  # a package's own __init__
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
