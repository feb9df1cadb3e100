"""The package's shape, as ``../shared/DESIGN.md`` section 1 states it, checked by parsing every import:

- the dependency direction ``core <- image, audio <- music <- data <- cli`` (``X <- Y``: Y may import X, never
  the reverse; image and audio import neither each other nor anything above them);
- nothing imports the CLI but ``arsound.__main__``; only the CLI imports argparse;
- nothing in ``arsound/`` imports ``recipes``, ``benchmarks``, ``demo`` or ``tests`` by module name;
- no import cycle between modules (imports inside functions included).
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "arsound"
LAYERS = {"version": 0, "core": 1, "image": 2, "audio": 2, "music": 3, "data": 4, "cli": 5}
OUTSIDE = ("recipes", "benchmarks", "demo", "tests")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py") if "_shipped" not in p.parts}


def resolve(target: str, known: dict[str, Path]) -> str:
    """The most specific module of ``known`` that ``target`` (a dotted name, maybe ``pkg.attr``) lies in."""
    while target not in known:
        target = target.rpartition(".")[0]
    return target


def imports(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(arsound modules ``name`` imports, other top-level names it imports)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inside, outside = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] == "arsound":
                inside.add(resolve(t, known))
            else:
                outside.add(t.split(".")[0])
    return inside, outside


def group(module: str) -> str:
    parts = module.split(".")
    return "root" if len(parts) == 1 else parts[1]


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    known = modules()
    edges, others = {}, {}
    for name, path in known.items():
        edges[name], others[name] = imports(name, path, known)
        edges[name].discard(name)
    return edges, others


def test_dependency_direction():
    edges, _ = graph()
    bad = []
    for a, targets in edges.items():
        ga = group(a)
        for b in targets:
            gb = group(b)
            if gb == "cli" and ga not in ("cli", "__main__"):
                bad.append(f"{a} -> {b}: only arsound.__main__ imports the CLI")
            elif gb == "root" and ga not in ("cli", "__main__"):
                bad.append(f"{a} -> {b}: the package root is imported by the CLI only")
            elif ga == "root" and gb not in ("version", "core"):
                bad.append(f"{a} -> {b}: the package root imports version and core only")
            elif ga in LAYERS and gb in LAYERS and ga != gb and LAYERS[gb] >= LAYERS[ga]:
                bad.append(f"{a} ({ga}) -> {b} ({gb}): against core <- image, audio <- music <- data <- cli")
    assert not bad, "\n".join(sorted(bad))


def test_only_the_cli_parses_arguments_and_nothing_imports_the_outside():
    _, others = graph()
    argparse = sorted(m for m, o in others.items() if "argparse" in o and group(m) != "cli")
    assert not argparse, f"argparse outside arsound/cli: {argparse}"
    outside = sorted(f"{m} -> {o}" for m, names in others.items() for o in names if o in OUTSIDE)
    assert not outside, outside


def test_no_import_cycles():
    edges, _ = graph()
    state, stack, cycles = {}, [], []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_what_it_checks():
    """The parser resolves relative imports and reaches into functions (so the tests above can fail)."""
    edges, others = graph()
    assert "arsound.core.files" in edges["arsound.core.checkpoint"]          # from .files import ...
    assert "arsound.audio.wavenet_fast" in edges["arsound.audio.wavenet"]    # inside WaveNet.steps
    assert "arsound.cli.train" in edges["arsound.cli"]                       # from . import train
    assert "argparse" in others["arsound.cli.train"] or "argparse" in others["arsound.cli"]
