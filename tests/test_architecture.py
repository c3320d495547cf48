"""The house (#28): no import cycle, layers and independence enforced by import-linter (pyproject.toml), the
process environment read only where configuration enters, and no function over 60 lines.

``make test`` runs ``lint-imports`` too (its contracts: exhaustive layers, the runbook areas independent, no
ignore_imports); the cycle test here names a cycle the layers would allow between siblings of one layer."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "pmsops"

ENVIRONMENT_READERS = {
    # the configuration modules: the one place each setting is parsed
    "settings.py": "configuration",
    "sync/config.py": "configuration (the sync settings)",
    # the entry points: each builds its configuration once and passes it down
    "cli/main.py": "entry point: the CLI",
    "cli/common.py": "entry point: the CLI's context object",
    "cli/observe.py": "entry point: the terminal width of a piped top",
    "sync/worker.py": "entry point: celery -A pmsops.sync.worker:celery_app",
    "worker/alive.py": "entry point: python -m pmsops.worker.alive (the HEALTHCHECK)",
    "sandbox/api/deps.py": "entry point: the reference API's lifespan",
    "sandbox/api/health.py": "entry point: the reference API",
    "sandbox/api/auth.py": "entry point: the reference API",
    # the process launchers: a child process inherits the environment
    "sandbox/processes.py": "process launcher",
    "sandbox/servers.py": "process launcher",
    "sandbox/stack.py": "process launcher (the sandbox's directory)",
}
"""Every module that may read ``os.environ`` / ``os.getenv``, and why. Anything else gets its values passed in."""


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr in ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in ("environ", "getenv", "environb") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_the_configuration_modules_entry_points_and_launchers_read_the_process_environment():
    readers = {str(path.relative_to(SRC)): lines for path in _modules() if (lines := _reads_environment(ast.parse(path.read_text(encoding="utf-8"))))}
    assert {name: lines for name, lines in readers.items() if name not in ENVIRONMENT_READERS} == {}


def test_no_function_in_src_is_longer_than_60_lines():
    long = [
        f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert long == []


def test_the_module_graph_has_no_cycle():
    import grimp

    graph = grimp.build_graph("pmsops", cache_dir=None)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []
