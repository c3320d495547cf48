"""Runbook: "Quick Smoke → Step 1: Load Environment" (``source /root/pms_env.sh``).

``pmsops --env-file /root/pms_env.sh`` reads the same file **without executing it**:
``export K=V`` lines with quotes, comments and ``$VAR`` expansion. It beats the
process environment and loses to command-line flags.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pmsops.envfile import parse_env_text

ENCODED_URL = "redis://:complex%2Bpass%3Dword@coolify-redis:6379/0"


@pytest.fixture(autouse=True)
def _restore_environ():
    """--env-file writes into os.environ (so the Celery app sees it): undo that after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def env_file(tmp_path):
    def write(text: str, name: str = "pms_env.sh"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def values(text: str, **base: str) -> dict[str, str]:
    return parse_env_text(text, base=base).values


# --- what the file may contain ------------------------------------------------------------------------------


def test_export_lines_are_read():
    assert values("export REDIS_URL=redis://h:6379/0\n") == {"REDIS_URL": "redis://h:6379/0"}


def test_lines_without_export_are_read():
    assert values("EMAIL=ops@example.com\n") == {"EMAIL": "ops@example.com"}


def test_single_quotes_keep_everything_literally():
    assert values("export PASSWORD='pa$$ \"word\" # not a comment'\n") == {"PASSWORD": 'pa$$ "word" # not a comment'}


def test_double_quotes_expand_variables_and_understand_escapes():
    text = 'export A=one\nexport B="${A} \\"two\\" \\\\ $A"\n'

    assert values(text)["B"] == 'one "two" \\ one'


def test_escaped_dollar_in_double_quotes_stays_a_dollar():
    assert values('export PASSWORD="pa\\$HOME"\n', HOME="/root") == {"PASSWORD": "pa$HOME"}


def test_unquoted_value_expands_variables_and_drops_trailing_comment():
    text = "export REDIS_URL='redis://:x@h:6379/0'\nexport CELERY_BROKER_URL=$REDIS_URL  # same as the backend\n"

    assert values(text)["CELERY_BROKER_URL"] == "redis://:x@h:6379/0"


def test_variables_from_the_process_environment_are_expanded():
    assert values("export API=$PMS_HOST/api/v1\n", PMS_HOST="https://api.example.com") == {"API": "https://api.example.com/api/v1"}


def test_undefined_variable_expands_to_empty_as_in_the_shell():
    assert values('export X="a${NOPE}b"\n') == {"X": "ab"}


def test_comments_and_blank_lines_are_ignored():
    assert values("# Redis\n\n   # indented comment\nexport A=1\n") == {"A": "1"}


def test_windows_line_endings_and_utf8_bom_are_tolerated(env_file, cli):
    path = env_file("")
    with open(path, "w", encoding="utf-8-sig", newline="\r\n") as handle:
        handle.write(f"export REDIS_URL='{ENCODED_URL}'\n")

    result = cli("--env-file", path, "redis-url", "check")

    assert result.exit_code == 0
    assert "REDIS_URL  redis://:***@coolify-redis:6379/0" in result.stdout


def test_non_assignment_lines_are_skipped_by_line_number_only():
    parsed = parse_env_text("export A=1\necho secret-value\nsource other.sh\n")

    assert parsed.values == {"A": "1"}
    assert parsed.skipped == [2, 3]


# --- never executed ---------------------------------------------------------------------------------------------


def test_command_line_in_env_file_is_not_run(cli, env_file, tmp_path):
    marker = tmp_path / "marker"
    path = env_file(f"export REDIS_URL='{ENCODED_URL}'\ntouch {marker}\n")

    result = cli("--env-file", path, "redis-url", "check")

    assert result.exit_code == 0
    assert not marker.exists()


def test_command_substitution_in_a_value_is_not_run(cli, env_file, tmp_path):
    marker = tmp_path / "marker"
    path = env_file(f"export REDIS_URL='{ENCODED_URL}'\nexport X=$(touch {marker})\nexport Y=\"`touch {marker}`\"\n")

    cli("--env-file", path, "redis-url", "check")

    assert not marker.exists()


def test_command_substitution_is_skipped_not_used_as_a_literal_value():
    parsed = parse_env_text("export TOKEN=$(curl -s https://auth)\nexport A=1\n")

    assert parsed.values == {"A": "1"}
    assert parsed.skipped == [1]


def test_escaped_command_substitution_in_double_quotes_is_a_literal_value():
    assert values('export P="\\$(not run)"\n') == {"P": "$(not run)"}


def test_skipped_lines_are_reported_on_stderr_without_their_text(cli, env_file):
    path = env_file(f"export REDIS_URL='{ENCODED_URL}'\necho hunter22-secret\n")

    result = cli("--env-file", path, "redis-url", "check")

    assert "skipped 1 line(s) that are not assignments (line 2); nothing in it is executed" in result.stderr
    assert "hunter22-secret" not in result.output


# --- precedence: flags > env file > process environment ---------------------------------------------------------------


def test_env_file_wins_over_the_process_environment(cli, env_file):
    path = env_file(f"export REDIS_URL='{ENCODED_URL}'\n")

    result = cli("--env-file", path, "redis-url", "check", env={"REDIS_URL": "redis://:x@process-env-host:6379/0"})

    assert "host coolify-redis" in result.stdout
    assert "process-env-host" not in result.stdout


def test_process_environment_fills_what_the_env_file_leaves_out(cli, env_file):
    path = env_file(f"export REDIS_URL='{ENCODED_URL}'\n")

    result = cli("--env-file", path, "redis-url", "check", env={"CELERY_BROKER_URL": ENCODED_URL})

    assert "✓ CELERY_BROKER_URL" in result.stdout


def test_command_line_url_wins_over_the_env_file(cli, env_file):
    path = env_file("export REDIS_URL='redis://:x@env-file-host:6379/0'\n")

    result = cli("--env-file", path, "redis-url", "check", "redis://:pw0rd123@flag-host:6379/0")

    assert "host flag-host" in result.stdout
    assert "env-file-host" not in result.stdout


def test_url_option_wins_over_the_env_file_for_compare_password_hash(cli, env_file):
    path = env_file("export REDIS_URL='redis://:wrong-password@coolify-redis:6379/0'\n")

    result = cli("--env-file", path, "compare-password-hash", "--url", ENCODED_URL, "--requirepass-stdin", input="complex+pass=word")

    assert result.exit_code == 0


# --- unusable files --------------------------------------------------------------------------------------------------------


def assert_one_line_usage_error(result, text: str) -> None:
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"✗ error: {text}")
    assert result.stdout == ""


def test_missing_env_file_is_bad_input_exit_2_in_one_line(cli, tmp_path):
    result = cli("--env-file", str(tmp_path / "pms_env.sh"), "redis-url", "check")

    assert_one_line_usage_error(result, "env file not found")


def test_env_file_that_is_a_directory_is_bad_input_exit_2(cli, tmp_path):
    result = cli("--env-file", str(tmp_path), "redis-url", "check")

    assert_one_line_usage_error(result, "env file is a directory")


def test_env_file_that_is_not_text_is_bad_input_exit_2(cli, tmp_path):
    path = tmp_path / "pms_env.sh"
    path.write_bytes(b"export A=\xff\xfe\n")

    result = cli("--env-file", str(path), "redis-url", "check")

    assert_one_line_usage_error(result, "env file is not UTF-8 text")


def test_unreadable_env_file_is_bad_input_exit_2(tmp_path):
    """A real permission problem: root's 0600 file read by a second local user (chmod 000 does not stop root itself)."""
    from local_user import call_as, intruder

    from pmsops.envfile import load_env_file
    from pmsops.errors import UsageError

    user = intruder()
    folder = Path(tempfile.mkdtemp(prefix="pmsops-env-"))  # reachable by the other user; the file itself is not readable
    try:
        folder.chmod(0o755)
        path = folder / "pms_env.sh"
        path.write_text("export A=1\n")
        path.chmod(0o600)
        with pytest.raises(UsageError, match=r"^env file not readable \(permission denied\): "):
            call_as(user, load_env_file, str(path))
    finally:
        shutil.rmtree(folder)


# --- hostile env files: refused at once, never read whole ----------------------------------------------------------------


def test_env_file_that_is_a_fifo_is_refused_within_a_second(cli, tmp_path):
    fifo = tmp_path / "pms_env.sh"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(cli("--env-file", str(fifo), "redis-url", "check")), daemon=True)
    reader.start()
    reader.join(1.0)
    hung = reader.is_alive()
    if hung:  # old behaviour: blocked in open() until a writer comes; be that writer so the thread ends
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "w"):
            pass
        reader.join(5)
    assert not hung, "--env-file blocked on a FIFO"
    assert_one_line_usage_error(outcome[0], f"env file is a FIFO, not a regular file: {fifo}")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/dev/zero", "env file is a character device, not a regular file: /dev/zero"),
        ("sparse", "env file is too large (1073741824 bytes, at most 1048576): "),
    ],
    ids=["dev-zero", "sparse-1GiB"],
)
def test_env_file_that_never_ends_or_is_huge_is_refused_without_reading_it(tmp_path, source, message):
    from local_user import run_bounded

    path = source
    if source == "sparse":
        path = str(tmp_path / "pms_env.sh")
        with open(path, "wb") as handle:
            handle.truncate(1 << 30)
    started = time.monotonic()
    done = run_bounded("--env-file", path, "redis-url", "check", memory=1 << 30)  # reading it whole would die of MemoryError
    assert done.returncode == 2, done.stderr[-300:]
    assert done.stderr.startswith(f"✗ error: {message}") and done.stderr.count("\n") == 1, done.stderr[-300:]
    assert time.monotonic() - started < 20


def test_env_file_just_over_one_mebibyte_is_refused(cli, tmp_path):
    path = tmp_path / "pms_env.sh"
    path.write_text("export A=1\n" + "#" * (1024 * 1024))

    result = cli("--env-file", str(path), "redis-url", "check")

    assert_one_line_usage_error(result, f"env file is too large ({1024 * 1024 + 11} bytes, at most 1048576): {path}")


def test_env_file_from_proc_is_refused_not_loaded_silently(cli):
    result = cli("--env-file", "/proc/self/environ", "redis-url", "check")

    assert_one_line_usage_error(
        result, "env file is a pseudo-file (it reports size 0 but has content, as /proc and /sys files do): /proc/self/environ"
    )


def test_env_file_through_a_link_to_a_regular_file_is_read(cli, env_file, tmp_path):
    target = env_file(f"export REDIS_URL='{ENCODED_URL}'\n")
    link = tmp_path / "current.env"
    link.symlink_to(target)

    result = cli("--env-file", str(link), "redis-url", "check")

    assert result.exit_code == 0, result.output


def test_unterminated_quote_is_bad_input_naming_line_and_variable_not_value(cli, env_file):
    path = env_file("export A=1\nexport PASSWORD='hunter22\n")

    result = cli("--env-file", path, "redis-url", "check")

    assert_one_line_usage_error(result, f"{path}:2: unterminated single quote in the value of PASSWORD")
    assert "hunter22" not in result.output


def test_secrets_from_the_env_file_are_registered_for_redaction(cli, env_file):
    path = env_file("export REDIS_URL='redis://:hunter22-x@coolify-redis:6379/0'\nexport JWT_SECRET=jwt-secret-value\n")

    cli("--env-file", path, "redis-url", "check")

    from pmsops.redaction import redact

    assert redact("hunter22-x and jwt-secret-value") == "*** and ***"
