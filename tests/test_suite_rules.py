"""Rules the suite keeps so that it can fail, and only for a reason (#26).

- No fixed wait of 0.5 s or more in tests or benchmarks: wait on a condition with a deadline. A wait
  that *is* the fault (a database away for 30 s, a server that hangs) says so in a comment on its line
  with the word "fault".
- No exit-code assertion that accepts several values: each case has one right exit code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py")])
SLEEPS = {"sleep"}
EXIT_NAMES = ("exit_code", "returncode", "exitcode", "exit_status", "code")


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _constant_seconds(node: ast.Call) -> float | None:
    arg = node.args[0] if node.args else None
    return float(arg.value) if isinstance(arg, ast.Constant) and isinstance(arg.value, (int, float)) else None


def fixed_waits(source: str) -> list[int]:
    """Line numbers of ``sleep(<constant ≥ 0.5>)`` calls whose line does not name a fault."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _called_name(node) in SLEEPS:
            seconds = _constant_seconds(node)
            if seconds is not None and seconds >= 0.5 and "fault" not in lines[node.lineno - 1].lower():
                found.append(node.lineno)
    return found


def _names_an_exit_code(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name.lower().endswith(EXIT_NAMES)


def several_exit_codes(source: str) -> list[int]:
    """Line numbers of ``assert <exit code> in (a, b, …)`` (any literal collection of two or more)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1:
            test = node.test
            collection = test.comparators[0]
            if (
                isinstance(test.ops[0], ast.In)
                and _names_an_exit_code(test.left)
                and isinstance(collection, (ast.Tuple, ast.List, ast.Set))
                and len(collection.elts) > 1
            ):
                found.append(node.lineno)
    return found


@pytest.mark.parametrize("rule", [fixed_waits, several_exit_codes], ids=["fixed-waits", "several-exit-codes"])
def test_the_suite_keeps_its_rules(rule):
    broken = {str(path.relative_to(ROOT)): lines for path in SOURCES if (lines := rule(path.read_text(encoding="utf-8")))}

    assert broken == {}


def test_the_rules_find_what_they_refuse():
    source = (
        "import time, asyncio\n"
        "time.sleep(0.5)\n"
        "await asyncio.sleep(3)\n"
        "time.sleep(10)  # the fault itself: the database is away\n"
        "time.sleep(0.2)\n"
        "assert result.exit_code in (0, 1, 2)\n"
        "assert proc.returncode in [0, 1]\n"
        "assert result.exit_code in (0,)\n"
        "assert name in ('a', 'b')\n"
    )

    assert (fixed_waits(source), several_exit_codes(source)) == ([2, 3], [6, 7])
