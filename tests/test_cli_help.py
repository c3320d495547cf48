"""Finding one's way: pmsops help, help grouped by runbook section, "Did you mean" once, usage in errors, completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _pmsops(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "pmsops", *args], env={**base, "PYTHONPATH": SRC, "COLUMNS": "100", **env}, capture_output=True, text=True, timeout=30
    )


def test_help_command_shows_the_help_of_a_sub_command(cli):
    result = cli("help", "sync", "trigger")

    assert result.exit_code == 0
    assert "Usage: pmsops sync trigger [OPTIONS] [CONNECTION_ID]" in result.stdout
    assert "--wait" in result.stdout


def test_help_of_an_unknown_command_is_bad_input(cli):
    result = cli("help", "sync", "trigga")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "✗ error: no command 'sync trigga'"


def test_top_level_help_is_grouped_by_runbook_section():
    done = _pmsops("--help")

    assert done.returncode == 0
    for panel in (
        "Live checks (runbook: Verification, Troubleshooting)",
        "API (runbook: Quick Smoke, Manual Sync Trigger, Sync Logs)",
        "Worker container (runbook: Redis + Celery Worker Setup)",
        "Host server (runbook: HOST-SERVER-TERMINAL)",
    ):
        assert panel in done.stdout, panel


def test_did_you_mean_is_said_once(cli):
    result = cli("doctr")

    assert result.exit_code == 2
    assert result.stderr.count("Did you mean 'doctor'?") == 1


def test_completion_script_and_candidates_without_reading_any_env_file(tmp_path):
    # the shell named explicitly: Typer otherwise detects it from the parent processes (none under a detached CI runner)
    script = _pmsops("--show-completion", "bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    candidates = _pmsops(
        _PMSOPS_COMPLETE="complete_bash", COMP_WORDS="pmsops sync tr", COMP_CWORD="2", PMSOPS_ENV_FILE=str(tmp_path / "missing.sh")
    )  # completing must not read (or fail on) the env file

    assert script.returncode == 0 and "_pmsops_completion" in script.stdout
    assert candidates.returncode == 0 and candidates.stdout.split() == ["trigger"]


def _help(*args: str, columns: int) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "pmsops", *args], capture_output=True, text=True, env=env, timeout=60).stdout


def test_the_first_screen_of_help_at_80x24_says_what_to_run_first():
    """#24 item 10: --help began with 30 lines of options; its first 24 lines now name the commands to start with."""
    first_screen = "\n".join(_help("--help", columns=80).splitlines()[:24])
    for start in ("pmsops doctor", "pmsops smoke", "pmsops top", "pmsops report", "pmsops demo", "pmsops help COMMAND"):
        assert start in first_screen, start


def test_help_smoke_lists_every_variable_smoke_and_its_token_step_read():
    """The list is checked against the code: every name smoke.py and api/token.py read through the settings."""
    import ast
    from pathlib import Path

    import pmsops

    root = Path(pmsops.__file__).parent
    read = set()
    for source in (root / "procedures" / "smoke.py", root / "api" / "token.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("get", "require") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.isupper():
                    read.add(first.value)
    shown = " ".join(_help("help", "smoke", columns=400).split())
    assert {"PMS_API_URL", "TOKEN", "CID"} <= read
    assert sorted(name for name in read if name not in shown) == []
