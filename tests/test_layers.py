"""The house's walls: no module imports a higher layer, and no import cycle between modules (lazy imports inside
functions included), read from the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# neuron -> text -> tokenizer -> lm -> train -> eval -> experiments / integrations -> cli; shared leaves at the bottom
LAYERS = {
    "errors": 0, "atomic": 0, "units": 0, "presets": 0,
    "neuron": 1, "text": 2, "tokenizer": 3, "lm": 4, "train": 5, "eval": 6,
    "experiments": 7, "integrations": 7, "cli": 8,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "speak").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The speak modules ``path`` imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "speak":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "speak"}
    return {m for m in found if m in modules}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    missing = sorted({m.split(".")[1] for m in _modules() if "." in m and _layer(m) is None} - {"__main__"})
    assert not missing, f"add these rooms to LAYERS: {missing}"


def test_no_module_imports_a_higher_layer():
    modules = _modules()
    upward = [f"{m} -> {t}" for m, p in modules.items() for t in _imports(p, modules)
              if _layer(m) is not None and _layer(t) is not None and _layer(t) > _layer(m)]
    assert not upward, upward


def test_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    # packages import their own submodules by design; a cycle through a package's __init__ and its child is not one
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles[:3]
