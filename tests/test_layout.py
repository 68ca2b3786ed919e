"""The package layout is a rule, not a habit (docs/adr/0009-layout.md).

Every import in src/k2 -- at the top of a module or inside a function -- is read with `ast` and
checked against the layer table below: a module imports its own package and lower layers only.
`k2 feed`'s whole import closure must stay clear of the warehouse, chDB, pyarrow and numpy, and
only k2.services (and the simulator, a program of its own) may start a server or install a signal
handler. Each test plants nothing: it reads the real tree, so a new import that breaks a rule
fails here, with the offending module and line named.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "k2"

#: layer of each part of the package, lowest first; a module may import its own package and any
#: lower layer. Names not listed (k2.<module>) are looked up by their longest listed prefix.
LAYERS: dict[str, int] = {
    "k2": 0, "k2.errors": 0,
    "k2.times": 1, "k2.rejects": 1, "k2.runfile": 1, "k2.terminal": 1,
    "k2.exchanges": 2,
    "k2.config": 3,
    "k2.feed": 4, "k2.monitoring": 4,
    "k2.warehouse": 5,
    "k2.transport": 6,
    "k2.read": 7,
    "k2.history": 8,
    "k2.quality": 9,
    "k2.services": 10,
    "k2.cli": 11,
    # the exchange simulator is a program of its own: it uses the venue facts of k2.exchanges and
    # is used by the services that run it (k2 demo) and the CLI (k2 simulate)
    "k2.simulator": 3,
}
#: imports allowed against the table, each with its reason
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("k2.__main__", "k2.cli"): "python -m k2 is the command line",
}
#: what `k2 feed` must never load (its RSS budget is 100 MB; chDB alone maps 300)
FEED_FORBIDDEN = ("chdb", "pyarrow", "numpy", "pandas", "clickhouse_connect", "k2.warehouse", "k2.read",
                  "k2.history", "k2.quality", "k2.monitoring.latency", "k2.transport.direct",
                  "k2.transport.kafka_consumer")
#: calls that start a server or take over a signal: only services may make them
SERVICE_ONLY_CALLS = {"add_signal_handler", "signal", "serve_forever", "ThreadingHTTPServer", "HTTPServer",
                      "create_server", "start_server", "ws_create_server"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (k2.x.y, or a third-party top-level name)
    line: int
    top_level: bool  # at module level (not inside a function or class body's method)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    # imports under `if TYPE_CHECKING:` are for readers and type checkers, never executed
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                 for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        at_top = id(node) in top or any(id(node) in {id(c) for c in ast.walk(t)} for t in tree.body
                                         if isinstance(t, (ast.Try, ast.If)))
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(source, alias.name, node.lineno, at_top))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append(Import(source, full if is_module(full) else base, node.lineno, at_top))
    return found


ALL_IMPORTS = [imp for p in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(p)]


def layer_of(name: str) -> tuple[str, int] | None:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    return None


def package_of(name: str) -> str:
    """The layer package a module belongs to (k2.read.queries -> k2.read; k2.errors -> k2.errors)."""
    found = layer_of(name)
    return found[0] if found else name


def test_every_module_has_a_layer():
    missing = sorted({imp.source for imp in ALL_IMPORTS if layer_of(imp.source) is None})
    assert not missing, f"modules with no layer in tests/test_layout.py LAYERS: {missing}"


def test_imports_go_down_the_layers_only():
    wrong = []
    for imp in ALL_IMPORTS:
        if not imp.target.startswith("k2") or imp.source == "k2.__main__" and imp.target == "k2.cli":
            continue
        src, dst = package_of(imp.source), package_of(imp.target)
        if src == dst or (imp.source, package_of(imp.target)) in EXCEPTIONS or dst == "k2":
            continue
        if LAYERS[dst] >= LAYERS[src]:
            wrong.append(f"{imp.source}:{imp.line} imports {imp.target} ({dst} is layer {LAYERS[dst]}, "
                         f"{src} is layer {LAYERS[src]})")
    assert not wrong, "imports against the layers (docs/adr/0009-layout.md):\n" + "\n".join(wrong)


def closure(start: list[str], follow_inner: bool = True) -> dict[str, list[Import]]:
    """Every module reachable from `start` -> the chain of imports that reached it."""
    by_source: dict[str, list[Import]] = {}
    for imp in ALL_IMPORTS:
        by_source.setdefault(imp.source, []).append(imp)
    seen: dict[str, list[Import]] = {s: [] for s in start}
    todo = list(start)
    while todo:
        mod = todo.pop()
        for imp in by_source.get(mod, []):
            # the CLI's handlers import their command's modules when they run: in the `k2 feed`
            # process only the CLI's module-level imports (and the feed service) are loaded
            if mod.startswith("k2.cli") and not imp.top_level and not follow_inner:
                continue
            targets = [imp.target]
            parts = imp.target.split(".")
            targets += [".".join(parts[:n]) for n in range(1, len(parts))]  # importing a.b.c runs a and a.b
            for t in targets:
                if t not in seen:
                    seen[t] = seen[mod] + [imp]
                    todo.append(t)
    return seen


def test_k2_feed_cannot_reach_the_warehouse_chdb_or_pyarrow():
    reached = closure(["k2.__main__", "k2.cli", "k2.services.feed"], follow_inner=False)
    bad = {m: chain for m, chain in reached.items() if m.startswith(FEED_FORBIDDEN)
           and m.split(".")[0] in ("chdb", "pyarrow", "numpy", "pandas", "clickhouse_connect", "k2")
           and any(m == f or m.startswith(f + ".") for f in FEED_FORBIDDEN)}
    report = "\n".join(f"{m}: " + " -> ".join(f"{i.source}:{i.line}" for i in chain) for m, chain in sorted(bad.items()))
    assert not bad, "k2 feed would load:\n" + report


def test_the_check_above_sees_a_forbidden_import():
    """The closure walk is not vacuous: k2 run's service does reach chDB and pyarrow."""
    reached = closure(["k2.services.run"])
    assert "chdb" in reached and "pyarrow" in reached and "k2.warehouse.embedded" in reached


def test_only_services_start_servers_or_install_signal_handlers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name.startswith(("k2.services", "k2.simulator")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                owner = getattr(getattr(fn, "value", None), "id", "")
                if called in SERVICE_ONLY_CALLS and (called != "signal" or owner == "signal"):
                    wrong.append(f"{name}:{node.lineno} calls {owner + '.' if owner else ''}{called}")
    assert not wrong, "only k2.services may start servers or take signals:\n" + "\n".join(wrong)


@pytest.mark.parametrize("service", ["k2.services.feed"])
def test_k2_feed_loads_no_chdb_pyarrow_or_numpy_when_run(service):
    """The same rule, observed: import what `k2 feed` imports in a fresh interpreter."""
    code = (f"import sys, k2.cli, {service}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('chdb', 'pyarrow', 'numpy', 'pandas') "
            "or m.startswith(('k2.warehouse', 'k2.read'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
