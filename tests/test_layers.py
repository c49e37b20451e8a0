"""The architecture of mlbook, read from its imports (``ast``): ``core`` imports nothing else of mlbook;
kind packages import ``core`` and each other without circles; no kind package imports a chapter folder;
no chapter folder imports another chapter; no module imports a sibling in a circle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mlbook"
KINDS = ("core", "tools", "models", "text", "interp", "training", "merging", "ocr", "corpora")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported mlbook module, at module top?) for every import in the file."""
    tree, here = ast.parse(path.read_text()), module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            if node.module:  # `from pkg import sub` imports pkg.sub when sub is a module
                names += [f"{mod}.{a.name}" for a in node.names if (PKG.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                          or (PKG.parent / f"{mod}.{a.name}".replace(".", "/") / "__init__.py").exists()]
        for n in names:
            if n == "mlbook" or n.startswith("mlbook."):
                out.append((n, node in tree.body))
    return out


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def unit(mod: str) -> str:
    """The layer unit of a module: ``core``, a kind, ``chapters.chNN_slug`` or ``mlbook`` itself."""
    parts = mod.split(".")
    if len(parts) == 1:
        return "mlbook"
    if parts[1] == "chapters":
        return ".".join(parts[1:3]) if len(parts) > 2 else "chapters"
    return parts[1]


def edges() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        for target, _ in imports(path):
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != mod and target in MODULES:
                out.setdefault(mod, set()).add(target)
    return out


def test_the_kinds_exist():
    for kind in KINDS:
        assert (PKG / kind / "__init__.py").exists(), kind
    assert not [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"], "mlbook/ holds only packages"


def test_core_imports_nothing_else_of_mlbook():
    for mod, path in MODULES.items():
        if unit(mod) == "core":
            assert all(unit(t) == "core" for t, _ in imports(path)), mod


def test_no_kind_imports_a_chapter_and_no_chapter_another():
    for mod, path in MODULES.items():
        u = unit(mod)
        for target, _ in imports(path):
            t = unit(target)
            if u in KINDS:
                assert not t.startswith("chapters"), f"{mod} (a kind package) imports {target}"
            if u.startswith("chapters."):
                assert not (t.startswith("chapters.") and t != u), f"{mod} imports another chapter: {target}"


def _cycle(graph: dict[str, set[str]]):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_circles_between_modules():
    assert _cycle(edges()) is None


def test_no_circles_between_packages():
    graph: dict[str, set[str]] = {}
    for mod, targets in edges().items():
        for t in targets:
            if unit(t) != unit(mod) and unit(mod) != "mlbook":
                graph.setdefault(unit(mod), set()).add(unit(t))
    assert _cycle(graph) is None


def test_the_layer_test_finds_a_planted_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_sibling_imports_are_at_the_top():
    """Importing mlbook inside a function hides circles; it is allowed only for what pulls in a heavy
    third-party import at module level (torch, transformers)."""
    heavy = {m for m, p in MODULES.items()
             if any(line.startswith(("import torch", "from torch", "from transformers")) for line in p.read_text().splitlines())}
    for mod, path in MODULES.items():
        for target, top in imports(path):
            if not top and unit(mod) != "mlbook":
                assert target in heavy or target.rsplit(".", 1)[0] in heavy, f"{mod} imports {target} inside a function"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_modules_are_small(mod):
    n = MODULES[mod].read_text().count("\n")
    assert n <= MAX_LINES, f"{mod} has {n} lines (at most {MAX_LINES}): split it along its jobs"
