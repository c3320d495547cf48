"""Runbook: "Check Worker Logs", "Celery Worker is Ready", "Tasks are Being Received".

``docker logs pms-worker-v2 --since 60m | egrep -n 'received|succeeded|ERROR|Traceback'``
and the red flags ("Authentication required", "Connection refused", …), summarised.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from host_engine import _deployment, deployment  # noqa: F401  (the recorded deployment on the real Docker engine)
from host_helpers import RECORDED, fake_docker  # noqa: F401  (argv and secret-shape tests below)
from pmsops.host.logs import MAX_QUOTES, scan_logs


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


def test_healthy_worker_logs_show_ready_registered_tasks_and_task_counts(cli, deployment):
    result = cli("host", "logs", "pms-worker-v2")

    assert result.exit_code == 0
    assert "celery@pms-worker-v2 ready (3 tasks registered)" in result.stdout
    assert "registered: app.channel_manager.core.sync_engine.update_channel_availability" in result.stdout
    assert "2 received, 2 succeeded since 60m" in result.stdout
    assert "no authentication, connection, DNS errors or tracebacks" in result.stdout


def test_since_is_passed_to_docker_logs(cli, fake_docker):
    """Kept on the fake: it records the argv our code gives docker, which a real engine does not report."""
    cli("host", "logs", "--since", "2h", "--tail", "500")

    assert ["logs", "--since", "2h", "--tail", "500", "pms-worker-v2"] in fake_docker.calls()


def test_container_stderr_is_scanned_too_because_celery_logs_there(cli, deployment):
    # The recorded worker prints its banner and [tasks] on stdout, the ready line on stderr.
    deployment.logs("pms-worker-v2", stdout="", stderr=(RECORDED / "logs" / "pms-worker-v2.stderr").read_text())

    result = cli("host", "logs")

    assert "celery@pms-worker-v2 ready" in result.stdout


def test_broken_worker_fails_on_auth_refused_dns_and_traceback_and_warns_about_root(cli, deployment):
    deployment.logs_variant("pms-worker-v2", "broken-worker")

    result = cli("host", "logs", "--json")

    report = results_by_name(result.stdout)
    assert result.exit_code == 1
    statuses = {name: r["status"] for name, r in report.items() if name.startswith("logs ")}
    assert statuses == {
        "logs ready": "warn",
        "logs tasks": "skip",
        "logs auth": "fail",
        "logs refused": "fail",
        "logs dns": "fail",
        "logs task-failed": "fail",
        "logs traceback": "fail",
        "logs root": "warn",
    }
    assert report["logs auth"]["details"]["count"] == 2
    assert "pmsops compare-password-hash --container coolify-redis" in report["logs auth"]["hint"]
    assert "docker network connect <supabase-network> pms-worker-v2" in report["logs dns"]["hint"]
    assert "Dockerfile.worker" in report["logs root"]["hint"]


def test_red_flags_are_quoted_with_line_numbers_at_most_a_few(cli, deployment):
    stderr = "".join(f"[2025-12-29 12:20:0{i},000: ERROR/MainProcess] consumer: Connection refused (attempt {i})\n" for i in range(8))
    deployment.logs("pms-worker-v2", stderr=stderr)

    refused = results_by_name(cli("host", "logs", "--json").stdout)["logs refused"]

    assert refused["details"]["count"] == 8
    assert len(refused["notes"]) == MAX_QUOTES
    assert refused["notes"][-1].startswith("line 8: [2025-12-29 12:20:07,000: ERROR/MainProcess] consumer: Connection refused (attempt 7)")


def test_errors_only_before_the_last_ready_line_are_warnings_the_worker_got_past_them(cli, deployment):
    deployment.logs_variant("pms-worker-v2", "recovered-worker")

    result = cli("host", "logs", "--json")

    dns = results_by_name(result.stdout)["logs dns"]
    assert result.exit_code == 0
    assert dns["status"] == "warn"
    assert "all before the last ready line" in dns["summary"]


def test_ready_without_start_worker_sh_line_points_at_worker_cmd(cli, deployment):
    deployment.logs("pms-worker-v2", stderr="[2025-12-29 11:58:06,447: INFO/MainProcess] celery@pms-worker-v2 ready.\n")

    result = cli("host", "logs")

    assert "no '[worker] start_worker.sh active' line" in result.stdout
    assert "pmsops host worker-cmd pms-worker-v2" in result.stdout


def test_no_ready_line_in_the_window_suggests_a_longer_window(cli, deployment):
    deployment.logs("pms-worker-v2", stderr="[2025-12-29 13:00:00,000: INFO/MainProcess] Task x[1] received\n")

    report = results_by_name(cli("host", "logs", "--json").stdout)

    assert report["logs ready"]["status"] == "warn"
    assert "--since 24h" in report["logs ready"]["hint"]


def test_empty_logs_warn_instead_of_claiming_health(cli, deployment):
    deployment.logs("pms-worker-v2")

    result = cli("host", "logs")

    assert result.exit_code == 0
    assert "no log output since 60m" in result.stdout


def test_logs_of_a_crashed_worker_are_still_read_and_its_state_fails(cli, deployment):
    deployment.stop("pms-worker-v2", exit_code=1)
    deployment.logs_variant("pms-worker-v2", "broken-worker")

    report = results_by_name(cli("host", "logs", "--json").stdout)

    assert report["pms-worker-v2 state"]["summary"] == "container pms-worker-v2 is not running (status exited, exit code 1)"
    assert report["logs auth"]["status"] == "fail"


@pytest.mark.parametrize("since", ["60", "1h30m", "2025-12-29", "2025-12-29T12:00:00Z"])
def test_docker_durations_and_dates_are_accepted_for_since(cli, deployment, since):
    assert cli("host", "logs", "--since", since).exit_code == 0


def test_nonsense_since_is_bad_input_exit_2(cli, fake_docker):
    """Kept on the fake: "docker was never called" needs the fake's call log."""
    result = cli("host", "logs", "--since", "yesterday")

    assert result.exit_code == 2
    assert fake_docker.calls() == []


def test_celery_task_list_in_the_runbooks_format_is_read_too():
    scan = scan_logs(
        "[INFO/MainProcess] celery@pms-worker-v2 ready.\n[INFO/MainProcess] Tasks:\n"
        "  - app.channel_manager.core.sync_engine.update_channel_availability\n"
        "  - app.channel_manager.core.sync_engine.update_channel_pricing\n"
    )

    assert scan.node == "celery@pms-worker-v2"
    assert scan.tasks == [
        "app.channel_manager.core.sync_engine.update_channel_availability",
        "app.channel_manager.core.sync_engine.update_channel_pricing",
    ]


def test_colour_codes_in_logs_do_not_hide_signals():
    scan = scan_logs("\x1b[1;31m[ERROR]\x1b[0m Authentication required.\n")

    assert scan.hits["auth"] == [1]
    assert "\x1b" not in scan.lines[0]


# --- secrets in quoted log lines (issue #10): nobody registered them, the patterns must catch them ----------------------

from secret_shapes import ORDINARY_LINES, cases, leaks  # noqa: E402

SHAPE_CASES = cases()


def salted(secret: str, salt: str = "logs-test") -> str:
    """The fingerprint ``host logs`` shows in a secret's place, recomputed with hashlib alone."""
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), 100_000).hex()[:16]
    return f"<len={len(secret)} pbkdf2={digest} salt={salt}>"


@pytest.mark.parametrize(("shape", "secret"), [(s, x) for _, s, x in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_secret_nobody_registered_in_a_quoted_log_line_never_reaches_the_operator(cli, fake_docker, shape, secret):
    """Kept on the fake: ~90 secret shapes of one log line test the redaction of text; a real container per shape
    (1-2 s each) would add only docker's plumbing, which the tests above cover on the real engine."""
    line = shape.build(secret)
    fake_docker.logs("pms-worker-v2", stderr=f"[2025-12-29 12:30:00,000: ERROR/MainProcess] Authentication required. {line}\n")

    text = cli("--fingerprint-salt", "logs-test", "host", "logs")
    as_json = cli("--fingerprint-salt", "logs-test", "host", "logs", "--json")

    assert (text.exit_code, as_json.exit_code) == (1, 1)
    assert "line 1: [2025-12-29 12:30:00,000: ERROR/MainProcess] Authentication required." in text.stdout  # the line is quoted
    assert leaks(text.stdout + text.stderr, secret) == []
    assert leaks(as_json.stdout + as_json.stderr, secret) == []
    if shape.fingerprinted:
        assert salted(secret) in text.stdout  # the keyword stays, the value becomes its fingerprint


def test_quoted_log_line_keeps_the_keyword_and_shows_the_fingerprint_instead_of_the_value(cli, deployment):
    deployment.logs("pms-worker-v2", stderr="[ERROR/MainProcess] NOAUTH Authentication required. redis-cli -a Vq7-unknown-pw ping\n")

    result = cli("--fingerprint-salt", "logs-test", "host", "logs")

    assert f"line 1: [ERROR/MainProcess] NOAUTH Authentication required. redis-cli -a {salted('Vq7-unknown-pw')} ping" in result.stdout


def test_ordinary_worker_log_lines_are_quoted_unchanged(cli, deployment):
    stderr = "".join(f"[ERROR/MainProcess] Traceback (most recent call last): {line}\n" for line in ORDINARY_LINES)
    deployment.logs("pms-worker-v2", stderr=stderr)

    quoted = results_by_name(cli("host", "logs", "--json").stdout)["logs traceback"]["notes"]

    expected = [f"line {n}: [ERROR/MainProcess] Traceback (most recent call last): {line}" for n, line in enumerate(ORDINARY_LINES, start=1)][
        -MAX_QUOTES:
    ]
    assert quoted == expected


def test_short_registered_secret_in_a_quoted_log_line_is_masked(cli, deployment):
    deployment.set_env("pms-worker-v2", JWT_SECRET="Q7x")
    deployment.logs("pms-worker-v2", stderr="[ERROR/MainProcess] Traceback (most recent call last): jwt.decode(token, 'Q7x') said Q7x!\n")

    result = cli("host", "logs")

    assert "Q7x" not in result.output
    assert "jwt.decode(token, '<len=3 pbkdf2=" in result.stdout
