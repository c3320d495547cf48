"""wait-for-deps, worker-start and worker-check: what runs inside the worker container."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import time

import pytest

from conftest import REDIS_PASSWORD, TESTS, stop_worker

PMSOPS = [sys.executable, "-m", "pmsops"]


def pmsops(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """The real binary in a subprocess: wait-for-deps and worker-start exec other programs."""
    return subprocess.run([*PMSOPS, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


def test_ready_dependencies_print_the_runbooks_lines_and_exit_0(redis_server, postgres):
    result = pmsops("wait-for-deps", "--timeout", "10", env={"REDIS_URL": redis_server.url, "DATABASE_URL": postgres.url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "====== Wait-for-Deps Preflight Check ======" in result.stdout
    assert f"Waiting for Database (127.0.0.1:{postgres.port})..." in result.stdout
    assert "✓ Database is ready" in result.stdout and "✓ Redis is ready" in result.stdout
    assert "✓ All dependencies ready" in result.stdout


def test_dependency_that_appears_late_is_picked_up_within_one_interval(tmp_path):
    from pmsops.sandbox.servers import RedisServer, free_port

    port = free_port()
    server = RedisServer("late+pw/ü", port=port)
    env = {**os.environ, "REDIS_URL": server.url, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    proc = subprocess.Popen([*PMSOPS, "wait-for-deps", "--timeout", "20", "--interval", "0.5"], env=env, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    appeared = None
    try:
        for line in proc.stdout:  # the server appears once wait-for-deps has found it missing (a condition, not a sleep)
            lines.append(line)
            if appeared is None and "not ready (tcp: TCP" in line:
                server.start()
                appeared = time.monotonic()
        proc.wait(30)
        finished = time.monotonic()
    finally:
        proc.kill()
        proc.wait()
        server.stop()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "not ready (tcp: TCP" in output and appeared is not None
    assert finished - appeared < 0.5 * 1.1 + 1.5  # one interval, plus AUTH
    assert finished > appeared > started  # it waited for the dependency


def test_dependency_that_never_comes_up_exits_124_near_the_timeout(refused_port):
    started = time.monotonic()
    result = pmsops("wait-for-deps", "--timeout", "2", "--interval", "0.3", env={"REDIS_URL": f"redis://:x@127.0.0.1:{refused_port}/0"})
    elapsed = time.monotonic() - started
    assert result.returncode == 124
    assert "Timeout after 2 s waiting for Redis" in result.stdout
    assert "connection refused" in result.stdout
    assert elapsed < 2 + 0.3 * 1.1 + 2.0


def test_wrong_password_exits_1_at_once_instead_of_waiting(redis_server):
    started = time.monotonic()
    result = pmsops("wait-for-deps", "--timeout", "30", env={"REDIS_URL": f"redis://:wrong@127.0.0.1:{redis_server.port}/0"})
    assert result.returncode == 1
    assert time.monotonic() - started < 5
    assert "rejected the credentials" in result.stdout and "Permanent error" in result.stdout


def test_wrong_database_password_exits_1_at_once(postgres):
    url = postgres.url.replace(postgres.url.split("@")[0].split(":", 2)[2], "wrong")
    result = pmsops("wait-for-deps", "--timeout", "30", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "PostgreSQL rejected the credentials" in result.stdout


def test_command_runs_only_after_success_and_keeps_its_exit_status(redis_server, tmp_path):
    marker = tmp_path / "ran"
    ok = pmsops("wait-for-deps", "--timeout", "10", "--", "sh", "-c", f"touch {marker}; exit 7", env={"REDIS_URL": redis_server.url})
    assert ok.returncode == 7 and marker.exists()


def test_command_does_not_run_when_dependencies_are_missing(refused_port, tmp_path):
    marker = tmp_path / "ran"
    failed = pmsops(
        "wait-for-deps",
        "--timeout",
        "0.5",
        "--interval",
        "0.1",
        "--",
        "touch",
        str(marker),
        env={"REDIS_URL": f"redis://:x@127.0.0.1:{refused_port}/0"},
    )
    assert failed.returncode == 124 and not marker.exists()


def test_wait_can_be_switched_off(refused_port):
    result = pmsops("wait-for-deps", env={"WORKER_WAIT_FOR_DEPS": "false", "REDIS_URL": f"redis://:x@127.0.0.1:{refused_port}/0"})
    assert result.returncode == 0
    assert "skipping" in result.stdout


def test_worker_wait_host_variables_override_the_urls(refused_port):
    result = pmsops("wait-for-deps", "--timeout", "0.3", env={"WORKER_WAIT_DB_HOST": "127.0.0.1", "WORKER_WAIT_DB_PORT": str(refused_port)})
    assert result.returncode == 124
    assert f"Waiting for Database (127.0.0.1:{refused_port})" in result.stdout


def test_unresolvable_host_is_reported_as_dns_stage():
    result = pmsops("wait-for-deps", "--timeout", "0.5", "--interval", "0.2", env={"WORKER_WAIT_DB_HOST": "supabase-db.invalid"})
    assert result.returncode == 124
    assert "dns: cannot resolve supabase-db.invalid" in result.stdout


def test_dry_run_prints_the_exact_celery_command(cli, monkeypatch):
    monkeypatch.setenv("CELERY_POOL", "threads")
    monkeypatch.setenv("CELERY_CONCURRENCY", "8")
    monkeypatch.setenv("CELERY_MAX_TASKS_PER_CHILD", "1000")
    monkeypatch.setenv("CELERY_TIME_LIMIT", "300")
    result = cli("worker-start", "--dry-run")
    assert result.exit_code == 0
    assert (
        "-m celery -A pmsops.sync.worker:celery_app worker --pool threads --concurrency 8 --loglevel INFO --max-tasks-per-child 1000" in result.stdout
    )
    assert "--time-limit" not in result.stdout  # the app sets the hard limit (limit + one grace); a flag would override it


def test_unknown_pool_is_bad_input(cli, monkeypatch):
    monkeypatch.setenv("CELERY_POOL", "fork")
    result = cli("worker-start", "--dry-run")
    assert result.exit_code == 2 and "not a Celery pool" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal only applies to root")
def test_worker_start_refuses_to_run_as_root(cli):
    result = cli("worker-start")
    assert result.exit_code == 1
    assert "refusing to start the worker as root" in result.stderr and "SecurityWarning" in result.stderr


@pytest.fixture(scope="module")
def started_worker(redis_server, sync_db, fake_platform):
    """A real worker started through `pmsops worker-start` (non-root if we can, else --allow-root)."""
    from conftest import sync_worker_env

    env = {
        **os.environ,
        **sync_worker_env(redis_server, 8, sync_db, fake_platform.url),
        "CELERY_CONCURRENCY": "2",
        "CELERY_LOGLEVEL": "WARNING",
        "PYTHONPATH": str(TESTS.parent),
    }
    args = [*PMSOPS, "worker-start", "--hostname", "started@pmsops-test"] + (["--allow-root"] if os.geteuid() == 0 else [])
    from pmsops.sandbox import processes

    proc = processes.spawn(args, cwd=TESTS.parent, env=env, stdout=subprocess.PIPE, text=True)
    try:
        processes.wait_for_worker(env["CELERY_BROKER_URL"], "started@pmsops-test", 30, exited=processes.exited(proc))
    except processes.NotReady:
        stop_worker(proc)
        raise AssertionError(proc.stdout.read()) from None
    yield env
    stop_worker(proc)
    output = proc.stdout.read()
    assert "====== Celery Worker Starting ======" in output and "Pool: threads" in output


def _worker_env(env: dict[str, str]) -> dict[str, str]:
    return {k: env[k] for k in ("CELERY_BROKER_URL", "REDIS_URL", "DATABASE_URL", "ENCRYPTION_KEY")} | {
        "CELERY_RESULT_BACKEND": env["REDIS_URL"],
        "JWT_SECRET": "jwt-secret-value",
        "SUPABASE_JWT_SECRET": "jwt-secret-value",
        "JWT_AUDIENCE": "authenticated",
    }


def test_worker_check_passes_against_the_started_worker(cli, started_worker, monkeypatch):
    for key, value in _worker_env(started_worker).items():
        monkeypatch.setenv(key, value)
    result = cli("worker-check", "--destination", "started@pmsops-test", "--allow-root", "--json")
    report = json.loads(result.stdout.split("\nworker-check:")[0]) if result.stdout.startswith("{") else None
    assert result.exit_code == 0, result.stdout
    statuses = {r["name"]: r["status"] for r in report["results"]}
    assert statuses["ping"] == "ok" and statuses["registered"] == "ok" and statuses["network db"] == "ok"


def test_worker_check_reports_a_missing_worker(cli, started_worker, monkeypatch):
    for key, value in _worker_env(started_worker).items():
        monkeypatch.setenv(key, value)
    result = cli("worker-check", "--destination", "celery@no-such-worker", "--allow-root", "--timeout", "1")
    assert result.exit_code == 1
    assert "no worker answered" in result.stdout
    assert re.search(r"^\d+ ok, \d+ warnings?, 1 failed, 1 skipped in \d\.\d s: ping, ", result.stdout.splitlines()[-1])  # the one summary line


def test_worker_check_names_missing_variables_without_values(cli, redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    result = cli("worker-check", "--destination", "celery@nobody", "--timeout", "0.5")
    assert result.exit_code == 1
    assert "missing: DATABASE_URL, ENCRYPTION_KEY" in result.stdout
    from urllib.parse import quote

    assert quote(REDIS_PASSWORD, safe="") not in result.output


def test_worker_check_detects_stale_code(cli, tmp_path, monkeypatch):
    code = tmp_path / "sync_engine.py"
    code.write_text("print('new')\n")
    result = cli("worker-check", "--expect-sha256", f"{code}=deadbeefdeadbeef", "--timeout", "0.3", "--json")
    report = {r["name"]: r for r in json.loads(result.stdout.split("\nworker-check:")[0])["results"]}
    assert report[f"code {code}"]["status"] == "fail"
    assert "Disable build cache" in report[f"code {code}"]["hint"]


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the root verdict")
def test_worker_check_fails_as_root_without_allow_root():
    from pmsops.procedures.worker_check import check_user

    assert check_user().status == "fail"
    assert check_user(allow_root=True).status == "warn"


def test_non_finite_timeouts_are_bad_input(cli, monkeypatch):
    assert cli("wait-for-deps", "--timeout", "nan").exit_code == 2
    monkeypatch.setenv("WORKER_WAIT_TIMEOUT", "inf")
    monkeypatch.setenv("REDIS_URL", "redis://:x@127.0.0.1:1/0")
    result = cli("wait-for-deps")
    assert result.exit_code == 2 and "finite" in result.stderr


@pytest.mark.parametrize("down", ["db", "redis"])
def test_worker_check_on_a_refused_dependency_says_it_is_not_listening_not_to_attach_networks(
    cli, redis_server, postgres, refused_port, monkeypatch, down
):
    """A refused connection means the host is reachable and nothing listens (#24 item 6): attaching networks is the wrong fix."""
    monkeypatch.setenv("REDIS_URL", redis_server.url if down == "db" else f"redis://:pw@127.0.0.1:{refused_port}/0")
    monkeypatch.setenv("DATABASE_URL", postgres.url if down == "redis" else f"postgresql://u:p@127.0.0.1:{refused_port}/db")

    result = cli("worker-check", "--destination", "celery@nobody", "--timeout", "0.5", "--json")

    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    network = report[f"network {down}"]
    assert network["status"] == "fail" and "connection refused" in network["summary"]
    assert "not running or not listening" in network["hint"] and "networks" not in network["hint"]


def test_worker_check_under_the_default_name_points_at_the_worker_started_with_another(cli, started_worker, monkeypatch):
    """The sandbox's worker is sandbox@<host>, not celery@<host>: say which workers the broker has and how to name one (#24 item 8)."""
    for key, value in _worker_env(started_worker).items():
        monkeypatch.setenv(key, value)

    result = cli("worker-check", "--allow-root", "--timeout", "1", "--json")

    ping = next(r for r in json.loads(result.stdout)["results"] if r["name"] == "ping")
    assert result.exit_code == 1
    assert "workers on this broker: started@pmsops-test" in ping["summary"]
    assert ping["hint"] == "the worker has another name: pass it with -d started@pmsops-test"
