"""Lazy command loading: start-up builds only the command that runs, and --help imports none."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from pmsops.cli.lazy import CATALOG, MODULES, describe_modules


def test_the_catalog_says_exactly_what_the_command_modules_register():
    # if this fails after adding or changing a command: python -m pmsops.cli.lazy prints the catalog to paste
    assert list(CATALOG.items()) == list(describe_modules().items())


def _modules_after(argv: list[str]) -> dict:
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from pmsops.cli.main import main

        CLIENTS = ("redis", "kombu", "celery", "asyncpg")
        sys.stdin = io.StringIO("pw\\\\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main({argv!r})
        loaded = sorted(m for m in sys.modules if m.startswith("pmsops.cli.") or m in ("pmsops.render", "pmsops.redaction") + CLIENTS)
        print(json.dumps({{"exit": code, "loaded": loaded, "out": out.getvalue()}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_root_help_imports_no_command_module_nor_the_renderer():
    report = _modules_after(["--help"])

    assert report["exit"] == 0
    assert report["loaded"] == ["pmsops.cli.common", "pmsops.cli.lazy", "pmsops.cli.main"]
    for name in CATALOG:
        assert name in report["out"]


def test_a_command_imports_only_its_own_module():
    report = _modules_after(["explain", "404"])

    assert report["exit"] == 0
    assert [m for m in report["loaded"] if m.removeprefix("pmsops.cli.") in MODULES] == ["pmsops.cli.offline"]
    assert "404" in report["out"]


def test_a_sub_command_of_a_lazily_loaded_group_runs_and_shows_its_help():
    report = _modules_after(["sync", "trigger", "--help"])

    assert report["exit"] == 0
    assert "Usage: pmsops sync trigger" in report["out"]


CLIENT_PACKAGES = {"redis", "kombu", "celery", "asyncpg"}


def test_redis_url_check_reads_a_plain_url_without_importing_a_client_library():
    # redis-py's reading is modelled for lower-case redis:// and rediss:// URLs without a query
    # (tests/test_url_redis_py_model.py pins the model to redis-py): start-up stays a bare Typer app's
    report = _modules_after(["redis-url", "check", "redis://:p%2Bss%3Dw%40rd@127.0.0.1:6379/0"])

    assert report["exit"] == 0
    assert [m for m in report["loaded"] if m in CLIENT_PACKAGES] == []
    assert "host 127.0.0.1, port 6379, db 0" in report["out"]


def test_redis_url_check_asks_redis_py_itself_outside_the_models_domain():
    report = _modules_after(["redis-url", "check", "redis://:p%2Bss@127.0.0.1:6379/0?socket_timeout=3"])

    assert report["exit"] == 0
    assert [m for m in report["loaded"] if m in CLIENT_PACKAGES] == ["kombu", "redis"]  # the lint's kombu rules cover no query either
