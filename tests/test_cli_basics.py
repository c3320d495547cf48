"""What every pmsops command shares: help, README, global options, errors, start-up cost.

The command walk covers commands added later too: a new command without help text
or without a ``pmsops <command>`` mention in README.md fails here, listing them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer

README = Path(__file__).resolve().parent.parent / "README.md"
ENCODED_URL = "redis://:complex%2Bpass%3Dword@coolify-redis:6379/0"
ANSI = re.compile(r"\x1b\[")


def all_commands() -> list[tuple[str, object]]:
    """(command path, click command) for every visible command and sub-command, recursively."""
    from pmsops.cli.main import app

    found: list[tuple[str, object]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if getattr(sub, "hidden", False):
                continue
            found.append((" ".join(path + (name,)), sub))
            walk(sub, path + (name,))

    walk(typer.main.get_command(app), ())
    return found


# --- every command: help text and README ------------------------------------------------------------------


def test_every_command_has_help_text():
    missing = [path for path, command in all_commands() if not (command.help or command.short_help or "").strip()]

    assert not missing, f"commands without help text (add a docstring or help=): {missing}"


def test_every_command_is_documented_in_readme():
    readme = README.read_text(encoding="utf-8")

    missing = [f"pmsops {path}" for path, _ in all_commands() if not re.search(re.escape(f"pmsops {path}") + r"(?![\w-])", readme)]

    assert not missing, f"commands not mentioned in README.md as `pmsops <command>`: {missing}"


def test_the_offline_commands_of_the_runbook_are_registered():
    paths = {path for path, _ in all_commands()}

    assert {"encode-redis-password", "redis-url check", "compare-password-hash", "explain"} <= paths


def test_help_lists_the_commands(cli):
    result = cli("--help")

    assert result.exit_code == 0
    for name in ("encode-redis-password", "redis-url", "compare-password-hash", "explain"):
        assert name in result.stdout


def test_short_help_option_works(cli):
    assert cli("redis-url", "check", "-h").exit_code == 0


def test_no_command_shows_help_instead_of_an_error(cli):
    result = cli()

    assert "Usage: pmsops" in result.stdout
    assert "Traceback" not in result.output
    assert "error" not in result.stderr


# --- start-up cost: no heavy imports for --help and the offline commands -----------------------------------------


def test_help_and_offline_commands_do_not_import_celery_asyncpg_or_httpx():
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from pmsops.cli.main import main

        heavy = ("celery", "asyncpg", "httpx")
        runs = [
            ["--help"],
            ["redis-url", "check", "redis://:complex%2Bpass%3Dword@coolify-redis:6379/0"],
            ["explain", "404"],
            ["encode-redis-password", "--stdin"],
        ]
        report = {}
        for argv in runs:
            sys.stdin = io.StringIO("complex+pass=word\\n")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = main(argv)
            report[" ".join(argv[:2])] = {"exit": code, "heavy": [m for m in heavy if m in sys.modules]}
        print(json.dumps(report))
        """
    )

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {run: r["exit"] for run, r in report.items()} == dict.fromkeys(report, 0)
    assert {run: r["heavy"] for run, r in report.items()} == dict.fromkeys(report, [])


# --- global options -----------------------------------------------------------------------------------------------------


def test_version_prints_the_package_version(cli):
    from pmsops import __version__

    result = cli("--version")

    assert (result.exit_code, result.stdout) == (0, f"pmsops {__version__}\n")


TERMINAL = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
"""Make Rich believe it writes to a colour terminal, so the no-colour tests mean something."""


@pytest.mark.parametrize(
    "argv",
    [
        ("redis-url", "check", "redis://:pa+ss@coolify-redis:6379/0"),
        ("redis-url", "check", "http://coolify-redis"),
        ("explain", "307"),
        ("redis-url", "check", "--no-such-option"),
    ],
    ids=["results", "error", "explain", "usage-error"],
)
def test_colour_terminal_gets_ansi_escapes_by_default(cli, argv):
    assert ANSI.search(cli(*argv, env=TERMINAL).output)


@pytest.mark.parametrize(
    "argv",
    [
        ("redis-url", "check", "redis://:pa+ss@coolify-redis:6379/0"),
        ("redis-url", "check", "http://coolify-redis"),
        ("explain", "307"),
        ("redis-url", "check", "--no-such-option"),
    ],
    ids=["results", "error", "explain", "usage-error"],
)
def test_no_color_option_produces_no_ansi_escapes(cli, argv):
    result = cli("--no-color", *argv, env=TERMINAL)

    assert not ANSI.search(result.output), repr(result.output)


@pytest.mark.parametrize(
    "argv",
    [
        ("redis-url", "check", "redis://:pa+ss@coolify-redis:6379/0"),
        ("redis-url", "check", "http://coolify-redis"),
        ("explain", "307"),
    ],
    ids=["results", "error", "explain"],
)
def test_no_color_variable_produces_no_ansi_escapes(cli, argv):
    result = cli(*argv, env=TERMINAL | {"NO_COLOR": "1"})

    assert not ANSI.search(result.output), repr(result.output)


def test_output_to_a_pipe_has_no_ansi_escapes(cli):
    assert not ANSI.search(cli("redis-url", "check", "redis://:pa/ss@coolify-redis:6379/0").output)


def test_debug_shows_a_traceback_with_secrets_redacted(cli, monkeypatch):
    def boom(*args, **kwargs):
        raise ConnectionError("cannot reach redis://:hunter22@coolify-redis:6379/0")

    monkeypatch.setattr("pmsops.checks.urls.check_redis_urls", boom)

    result = cli("--debug", "redis-url", "check", ENCODED_URL)

    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConnectionError: cannot reach redis://:***@coolify-redis:6379/0" in result.stderr
    assert "hunter22" not in result.output


def test_debug_shows_the_traceback_of_bad_input_too(cli, tmp_path):
    result = cli("--debug", "--env-file", str(tmp_path / "missing.sh"), "redis-url", "check")

    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-2].startswith("✗ error: env file not found")


def test_unexpected_error_without_debug_suggests_debug(cli, monkeypatch):
    monkeypatch.setattr("pmsops.checks.urls.check_redis_urls", lambda *a, **k: 1 / 0)

    result = cli("redis-url", "check", ENCODED_URL)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["✗ error: ZeroDivisionError: division by zero", "  → re-run with --debug for the (redacted) traceback"]


# --- bad input: exit 2, one line, never a traceback -----------------------------------------------------------------------


BAD_INPUT = [
    ("no-such-command",),
    ("redis-url", "no-such-sub-command"),
    ("redis-url", "check", "--no-such-option"),
    ("redis-url", "check", ENCODED_URL, "extra-argument"),
    ("redis-url", "check", "coolify-redis:6379"),
    ("redis-url", "check", "http://coolify-redis:6379/0"),
    ("redis-url", "check"),
    ("encode-redis-password", "--stdin", "--port", "not-a-port"),
    ("encode-redis-password", "--stdin", "--port", "70000"),
    ("encode-redis-password", "--stdin", "--format", "yaml"),
    ("encode-redis-password", "--stdin"),
    ("compare-password-hash", "--url", ENCODED_URL),
    ("compare-password-hash", "--url", "ftp://x", "--requirepass-stdin"),
    ("explain", "not-a-code"),
    ("--env-file", "/nonexistent/pms_env.sh", "explain"),
    ("--env-file",),
]


@pytest.mark.parametrize("argv", BAD_INPUT, ids=[" ".join(argv) for argv in BAD_INPUT])
def test_bad_input_exits_2_without_a_traceback(cli, argv):
    result = cli(*argv, input="")

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("✗ error: ")
    assert len(result.stderr.strip().splitlines()) <= 2


def test_usage_error_names_the_help_of_the_command(cli):
    result = cli("redis-url", "check", "--no-such-option")

    first, second = result.stderr.splitlines()
    assert first.startswith("✗ error: No such option") and "--no-such-option" in first  # click's wording varies by version
    assert second == "  → usage: pmsops redis-url check [OPTIONS] [URL] (see pmsops redis-url check --help)"  # the sub-command's usage


def test_usage_error_text_passes_the_redaction_layer(cli):
    result = cli("redis-url", "check", ENCODED_URL, "redis://:hunter22@coolify-redis:6379/0")

    assert result.exit_code == 2
    assert "hunter22" not in result.output
