"""The worker container on a real Docker engine: ``worker-start`` as PID 1, ``worker-check`` as HEALTHCHECK.

Layout as in production (tests/docker_engine.py): Redis with a special-character
requirepass on the internal network ``coolify``, PostgreSQL on ``supabase``, the worker
as ``appuser`` (UID 10001) on both, in an image without /usr/share/zoneinfo.
"""

from __future__ import annotations

import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import PG_PASSWORD, REDIS_PASSWORD

SECRETS = (REDIS_PASSWORD, PG_PASSWORD, "jwt-secret-for-tests-0123456789", "pz3uZ1Hn0Lrq3e9VJ0F1bq4Sg5k9m7Xw2c8yT6aD4hE=")


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout:g} s")


def _health(engine, name: str) -> str:
    return engine.inspect(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")


def _assert_no_secret(text: str) -> None:
    from urllib.parse import quote

    for secret in SECRETS:
        assert secret not in text and quote(secret, safe="") not in text


@pytest.fixture
def worker_name(docker_scenario, request):
    """A unique container name, removed after the test."""
    import hashlib
    import re

    name = (
        "w-"
        + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[5:30].strip("-")
        + "-"
        + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    )
    yield name
    docker_scenario.remove(name)


@pytest.fixture(scope="module")
def running_worker(docker_scenario):
    """One worker started by `pmsops worker-start` with `worker-check --liveness` as its HEALTHCHECK, healthy."""
    name = docker_scenario.create_worker("w-running", docker_scenario.worker_env(), health="cli")
    docker_scenario.engine.docker("start", name)
    _wait_for(
        lambda: _health(docker_scenario.engine, name) == "healthy", 60, f"{name} did not become healthy: {docker_scenario.engine.logs(name)[-2000:]}"
    )
    yield name
    docker_scenario.remove(name)


def test_worker_started_by_worker_start_becomes_healthy_with_the_liveness_healthcheck(docker_scenario, running_worker):
    engine = docker_scenario.engine
    assert _health(engine, running_worker) == "healthy"
    log = engine.inspect(running_worker, "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}")
    assert "celery@w-running: alive, last beat" in log
    _assert_no_secret(engine.logs(running_worker))


def test_full_worker_check_by_docker_exec_passes_in_the_healthy_worker(docker_scenario, running_worker):
    done = docker_scenario.engine.docker("exec", running_worker, docker_scenario.pmsops, "worker-check", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "supabase-db:5432: DNS + TCP + login + SELECT 1 ok" in done.stdout and "celery@w-running: pong" in done.stdout
    _assert_no_secret(done.stdout + done.stderr)


def test_worker_check_fails_a_running_worker_whose_database_password_is_wrong(docker_scenario, running_worker):
    wrong = "postgresql://pms%20user:not-the-password@supabase-db:5432/postgres"
    done = docker_scenario.engine.docker(
        "exec", "-e", f"DATABASE_URL={wrong}", running_worker, docker_scenario.pmsops, "worker-check", "--json", check=False
    )
    assert done.returncode == 1
    import json

    report = {r["name"]: r for r in json.loads(done.stdout)["results"]}
    assert report["network db"]["status"] == "fail" and "PostgreSQL rejected the credentials" in report["network db"]["summary"]
    assert report["ping"]["status"] == "ok"  # the worker itself is fine: only the database login is wrong


def test_frozen_worker_turns_unhealthy_because_its_beacon_goes_stale(docker_scenario, worker_name):
    """The README's HEALTHCHECK line (python -m pmsops.worker.alive): healthy first, unhealthy once the worker freezes."""
    engine = docker_scenario.engine
    name = docker_scenario.create_worker(worker_name, docker_scenario.worker_env(), health="module")
    engine.docker("start", name)
    _wait_for(lambda: _health(engine, name) == "healthy", 60, "worker did not become healthy")
    engine.docker("kill", "-s", "STOP", name)  # from the host: inside, PID 1 ignores signals it has no handler for
    _wait_for(lambda: _health(engine, name) == "unhealthy", 20, "a frozen worker still reported healthy")
    log = engine.inspect(name, "{{range .State.Health.Log}}{{.Output}}{{end}}")
    assert "last beat" in log and "more than 3 s" in log


def test_database_that_starts_late_is_waited_for_then_the_worker_runs(docker_scenario, worker_name):
    engine = docker_scenario.engine
    docker_scenario.stop_postgres()
    try:
        name = docker_scenario.create_worker(worker_name, docker_scenario.worker_env(), health="module")
        engine.docker("start", name)
        _wait_for(lambda: "Database not ready" in engine.logs(name), 30, "worker did not report the database as not ready")
        engine.docker("start", docker_scenario.PG)
        _wait_for(lambda: _health(engine, name) == "healthy", 60, f"worker not healthy after the database came: {engine.logs(name)[-2000:]}")
    finally:
        if engine.inspect(docker_scenario.PG, "{{.State.Status}}") != "running":
            engine.docker("start", docker_scenario.PG)
        docker_scenario.pg_ready()
    logs = engine.logs(name)
    assert "✓ Database is ready (supabase-db:5432)" in logs and "ready." in logs


def _ran_for(engine, container: str) -> float:
    """Seconds from the container's start to its exit, as the engine recorded them."""
    from datetime import datetime

    def at(stamp: str) -> datetime:  # RFC 3339 with nanoseconds: fromisoformat takes microseconds
        head, _, tail = stamp.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{(tail or '0')[:6]:0<6}+00:00")

    started, finished = engine.inspect(container, "{{.State.StartedAt}} {{.State.FinishedAt}}").split()
    return (at(finished) - at(started)).total_seconds()


def test_wrong_redis_password_exits_1_at_once_naming_the_rejection(docker_scenario, worker_name):
    from urllib.parse import quote

    wrong = f"redis://:{quote('not-the-password', safe='')}@redis:6379/0"
    env = docker_scenario.worker_env(REDIS_URL=wrong, CELERY_BROKER_URL=wrong, CELERY_RESULT_BACKEND=wrong, WORKER_WAIT_TIMEOUT="120")
    name = docker_scenario.create_worker(worker_name, env)
    docker_scenario.engine.docker("start", name)
    code = docker_scenario.engine.wait_exit(name, 150)
    elapsed = _ran_for(docker_scenario.engine, name)  # the container's own run time: not the docker CLI's nor our polling's
    logs = docker_scenario.engine.logs(name)
    assert code == 1, logs
    assert elapsed < 60, f"took {elapsed:.1f} s"  # not retried until the 120-s wait budget (a loaded machine took 6 s)
    assert "Redis rejected the credentials" in logs and "Permanent error: not retrying" in logs
    assert "not-the-password" not in logs
    _assert_no_secret(logs)


def test_worker_not_attached_to_the_database_network_exits_124_naming_dns(docker_scenario, worker_name):
    env = docker_scenario.worker_env(WORKER_WAIT_TIMEOUT="3")
    name = docker_scenario.create_worker(worker_name, env, networks=("coolify",))
    started = time.monotonic()
    docker_scenario.engine.docker("start", name)
    code = docker_scenario.engine.wait_exit(name, 30)
    logs = docker_scenario.engine.logs(name)
    assert code == 124, logs
    assert time.monotonic() - started < 12
    assert "cannot resolve supabase-db" in logs and "Timeout after 3 s waiting for Database" in logs


def test_root_is_refused_with_what_the_check_verifies(docker_scenario, worker_name):
    name = docker_scenario.create_worker(worker_name, docker_scenario.worker_env(), user="0")
    docker_scenario.engine.docker("start", name)
    code = docker_scenario.engine.wait_exit(name, 30)
    logs = docker_scenario.engine.logs(name)
    assert code == 1, logs
    assert "refusing to start the worker as root (effective UID 0)" in logs
    assert "only verifies that the effective UID is not 0: any non-root user passes" in logs
    assert "Waiting for" not in logs  # refused before the dependency wait


def test_docker_stop_of_the_running_worker_is_celerys_warm_shutdown_exit_0(docker_scenario, worker_name):
    engine = docker_scenario.engine
    name = docker_scenario.create_worker(worker_name, docker_scenario.worker_env())
    engine.docker("start", name)
    _wait_for(lambda: f"celery@{name} ready." in engine.logs(name), 60, "Celery did not become ready")
    started = time.monotonic()
    engine.docker("stop", name)
    elapsed = time.monotonic() - started
    assert engine.wait_exit(name, 5) == 0
    assert elapsed < 8, f"docker stop took {elapsed:.1f} s"
    assert "Warm shutdown" in engine.logs(name)


@pytest.mark.parametrize("command", ["worker-start", "wait-for-deps"])
def test_docker_stop_while_waiting_for_dependencies_exits_143_at_once(docker_scenario, worker_name, command):
    engine = docker_scenario.engine
    argv = (
        (docker_scenario.pmsops, "worker-start")
        if command == "worker-start"
        else (docker_scenario.pmsops, "wait-for-deps", "--", "/bin/echo", "COMMAND-RAN")
    )
    name = docker_scenario.create_worker(worker_name, docker_scenario.worker_env(WORKER_WAIT_TIMEOUT="120"), networks=("coolify",), command=argv)
    engine.docker("start", name)
    _wait_for(lambda: "Database not ready" in engine.logs(name), 30, "worker did not start waiting")
    started = time.monotonic()
    engine.docker("stop", name)  # the container's stop timeout is 10 s: without a handler this ends in SIGKILL, 137
    elapsed = time.monotonic() - started
    logs = engine.logs(name)
    assert engine.wait_exit(name, 5) == 143, logs
    assert elapsed < 5, f"docker stop took {elapsed:.1f} s"  # half the 10 s after which docker sends SIGKILL
    assert "Stopped by SIGTERM waiting for Database (supabase-db:5432): exiting 143" in logs
    assert "COMMAND-RAN" not in logs


def test_image_without_time_zone_data_is_named_before_the_wait(docker_scenario, worker_name):
    tzdata = Path(sysconfig.get_paths(vars={"base": sys.prefix, "platbase": sys.prefix})["purelib"]).resolve() / "tzdata"
    assert tzdata.is_dir()  # the venv has the dependency; hide it as an image without it would
    name = docker_scenario.create_worker(worker_name, docker_scenario.worker_env(), extra=("--tmpfs", f"{tzdata}:ro"))
    docker_scenario.engine.docker("start", name)
    code = docker_scenario.engine.wait_exit(name, 30)
    logs = docker_scenario.engine.logs(name)
    assert code == 1, logs
    assert "no time-zone data" in logs and "pip install tzdata" in logs
    assert "Traceback" not in logs and "Waiting for" not in logs
