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
