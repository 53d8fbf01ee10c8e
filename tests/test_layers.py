"""The package's layers only point down, and no import cycle exists (read from the source with ``ast``).

Layers, lowest first (docs/architecture.md, "Layers"): a module may import modules of its own layer or
of lower ones, at module level and inside functions alike; module-level imports must not form a cycle
(function-level imports inside one layer may, e.g. a lazily imported backend).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "audiotok"

# (rank, module prefixes); a module's layer is that of its longest matching prefix.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("audiotok.registry", "audiotok.errors", "audiotok.dsp")),  # leaves: import nothing of ours
    (1, ("audiotok.codecs", "audiotok.data")),
    (2, ("audiotok.checkpoints", "audiotok.discriminators")),
    (3, ("audiotok.families",)),
    (4, ("audiotok.distill",)),
    (5, ("audiotok.tokenizers", "audiotok.export")),  # inference: load, Tokenizer, ONNX backend
    (6, ("audiotok.training",)),
    (7, ("audiotok",)),  # the public API (audiotok.load, audiotok.Tokenizer)
    (8, ("audiotok.benchmarks", "audiotok.info", "audiotok.demo", "audiotok.testing")),
    (9, ("audiotok.cli",)),
]
# A module named like a command-line module belongs to the CLI layer wherever it sits (none outside audiotok/cli/).
CLI_NAME = re.compile(r"(^|\.)(cli|cli_\w+|\w+_cli)$")
CLI_RANK = 9

# Known upward imports allowed for now (each entry must still exist: the list only shrinks). Empty since the
# command-line move (issue 13, part B): library code imports neither `audiotok.cli` nor its modules.
PENDING_CLI_MOVE: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[str, bool, int]]:
    """``(imported audiotok module, at module level, line)`` for every import in ``source``."""
    tree = ast.parse(source)
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under a top-level if/try still run at import time
        if isinstance(node, (ast.If, ast.Try)):
            top_level |= {id(child) for child in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "audiotok":
                continue
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name != module:
                found.append((name, id(node) in top_level, node.lineno))
    return found


def rank(module: str) -> int:
    if CLI_NAME.search(module):
        return CLI_RANK
    best = max((prefix for _, prefixes in LAYERS for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), key=len)
    return next(r for r, prefixes in LAYERS if best in prefixes)


def graph() -> dict[str, list[tuple[str, bool, int]]]:
    found = modules()
    return {name: imports(path.read_text(), name, path.name == "__init__.py", set(found))
            for name, path in found.items()}


def upward_imports(edges, allowed=frozenset()) -> list[str]:
    return [f"{a} (layer {rank(a)}) imports {b} (layer {rank(b)}) "
            f"{'at module level' if top else 'inside a function'}, line {line}"
            for a, targets in sorted(edges.items()) for b, top, line in targets
            if rank(b) > rank(a) and (a, b) not in allowed]


def cycles(edges) -> list[list[str]]:
    """Module-level import cycles (each as the list of modules around it)."""
    graph_ = {a: sorted({b for b, top, _ in targets if top}) for a, targets in edges.items()}
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph_.get(node, []):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph_):
        if node not in state:
            visit(node)
    return found


def test_every_module_has_a_layer():
    for name in modules():
        assert rank(name) >= 0, name


def test_no_import_runs_up_the_layers():
    edges = graph()
    upward = upward_imports(edges, PENDING_CLI_MOVE)
    assert not upward, "imports that run up the layers:\n  " + "\n  ".join(upward)
    present = {(a, b) for a, targets in edges.items() for b, _, _ in targets}
    gone = sorted(PENDING_CLI_MOVE - present)
    assert not gone, f"remove these entries from PENDING_CLI_MOVE, their imports are gone: {gone}"


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n  " + "\n  ".join(" -> ".join(c) for c in found)


def test_the_leaves_import_nothing_of_ours():
    edges = graph()
    for leaf in ("audiotok.registry", "audiotok.errors"):
        assert not edges[leaf], f"{leaf} must stay a leaf, imports {edges[leaf]}"


@pytest.mark.parametrize("case", ["cycle", "upward"])
def test_the_checks_catch_a_planted_fault(case):
    """The checks fail on a planted cycle (codec <-> a new module) and on a planted upward import."""
    edges = graph()
    if case == "cycle":
        edges["audiotok.codecs.codec"] = edges["audiotok.codecs.codec"] + [("audiotok.codecs.planted", True, 1)]
        edges["audiotok.codecs.planted"] = [("audiotok.codecs.codec", True, 1)]
        assert ["audiotok.codecs.codec", "audiotok.codecs.planted", "audiotok.codecs.codec"] in cycles(edges)
    else:
        edges["audiotok.codecs.codec"] = edges["audiotok.codecs.codec"] + [("audiotok.tokenizers.loading", False, 7)]
        assert ("audiotok.codecs.codec (layer 1) imports audiotok.tokenizers.loading (layer 5) inside a function, "
                "line 7") in upward_imports(edges)


def test_relative_imports_resolve_like_python():
    known = {"audiotok.codecs", "audiotok.codecs.codec", "audiotok.codecs.families", "audiotok.codecs.quantizers",
             "audiotok.registry"}
    source = "from .quantizers import x\nfrom ..registry import Registry\ndef f():\n    from . import families\n"
    assert imports(source, "audiotok.codecs.codec", False, known) == [
        ("audiotok.codecs.quantizers", True, 1), ("audiotok.registry", True, 2), ("audiotok.codecs.families", False, 4)]


def test_the_command_line_has_one_home_and_help_imports_nothing_heavy():
    """Every subcommand is a module of ``audiotok.cli`` (one naming style: the name, dashes as underscores),
    no command-line module lives elsewhere, and ``audiotok --help`` imports neither torch nor numpy nor a
    subcommand's module."""
    import subprocess
    import sys

    from audiotok.cli import SUBCOMMANDS

    for name, (module, _) in SUBCOMMANDS.items():
        assert module == f"audiotok.cli.{name.replace('-', '_')}", (name, module)
        assert module in modules(), module
    stray = [m for m in modules() if CLI_NAME.search(m) and not (m == "audiotok.cli" or m.startswith("audiotok.cli."))]
    assert not stray, f"command-line modules outside audiotok/cli/: {stray}"
    code = ("import sys\nfrom audiotok.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m in ('torch', 'numpy') or m.startswith('audiotok.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
