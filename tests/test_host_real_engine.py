"""The host diagnostics against a real Docker engine (the session's private dockerd, tests/docker_engine.py).

A Coolify-like host is built on it: ``coolify-redis`` (redis-server with requirepass on its command line, on the
``coolify`` network), a worker and a backend (busybox, the runbook's Redis URLs in their environment, on
``coolify`` and ``supabase``; DNS options as slow as production's: a name no network knows takes 8 s).
What a real engine cannot produce (a daemon that hangs on demand, a socket we may not open as root, Coolify's
recorded labels, images and application logs) stays with the fake in the other test_host_* files.
"""

from __future__ import annotations

import json
import subprocess
import time

from host_engine import ENCODED, GOOD_URL, RAW_URL, REQUIREPASS, host, monkeypatch_module, _engine_env  # noqa: F401

AUTH_LINE = "[2026-11-29 02:00:00,000: ERROR/MainProcess] consumer: Cannot connect to redis://coolify-redis:6379/0: Authentication required."


def results_of(result) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(result.stdout)["results"]}


def wait_for_log(engine, name: str, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in engine.logs(name):
        assert time.monotonic() < deadline, f"{name} did not log {text!r}"
        time.sleep(0.1)


# --- password-hash: every Redis URL of every inspected container ---------------------------------------------------


def test_healthy_host_compares_all_six_redis_urls_with_requirepass(cli, host):
    result = cli("host", "check", "--json")
    found = results_of(result)
    assert found["requirepass"]["status"] == "ok"
    assert "Config.Cmd --requirepass" in found["requirepass"]["summary"]
    assert found["password-hash"]["status"] == "ok"
    assert found["password-hash"]["summary"] == "match: all 6 Redis URLs of pms-worker-v2 and pms-backend carry coolify-redis's requirepass"
    assert REQUIREPASS not in result.output and ENCODED not in result.output


def test_worker_whose_broker_url_has_a_raw_truncated_password_is_named_and_the_logs_hint_points_at_it(cli, host, docker_scenario):
    name = host(
        "pms-worker-rawbroker",
        {"REDIS_URL": GOOD_URL, "CELERY_BROKER_URL": RAW_URL, "CELERY_RESULT_BACKEND": GOOD_URL},
        script=f"echo '{AUTH_LINE}'; sleep 3600",
    )
    wait_for_log(docker_scenario.engine, name, "Authentication required")

    result = cli("host", "check", "--worker", name, "--json")
    found = results_of(result)

    hashes = found["password-hash"]
    assert hashes["status"] == "fail"
    assert hashes["summary"] == f"mismatch: {name} CELERY_BROKER_URL does not carry coolify-redis's requirepass"
    assert f"{name} REDIS_URL: match" in " ".join(hashes["notes"])
    assert "truncated" in hashes["hint"] or "raw" in hashes["hint"]
    assert found["logs auth"]["status"] == "fail"
    assert found["logs auth"]["hint"].startswith(f"the wrong Redis URL: {name} CELERY_BROKER_URL (its password differs from requirepass")
    assert REQUIREPASS not in result.output and ENCODED not in result.output


def test_unknown_worker_keeps_the_redis_requirepass_result(cli, host):
    result = cli("host", "check", "--worker", "no-such-worker", "--json")
    found = results_of(result)

    assert result.exit_code == 1
    assert found["requirepass"]["status"] == "ok" and "Config.Cmd --requirepass" in found["requirepass"]["summary"]
    assert found["no-such-worker state"]["summary"] == "container no-such-worker not found"
    hashes = found["password-hash"]
    assert hashes["status"] == "fail"
    assert hashes["summary"] == "3 Redis URL(s) match, but not every container could be compared"
    assert "container no-such-worker not found" in hashes["notes"]


# --- DNS: a name that does not resolve is not a hung daemon ------------------------------------------------------------


def test_name_docker_dns_cannot_resolve_is_reported_as_not_resolving_within_the_timeout(cli, host):
    name = host(
        "pms-worker-coolify-only",
        {"REDIS_URL": GOOD_URL, "DATABASE_URL": "postgresql://u:p@supabase-db:5432/postgres"},
        networks=("coolify",),
        slow_dns=True,
    )

    started = time.monotonic()
    result = cli("host", "networks", name, "--timeout", "2", "--json")
    elapsed = time.monotonic() - started
    found = results_of(result)

    assert found["dns supabase-db"]["status"] == "fail"
    assert found["dns supabase-db"]["summary"] == f"supabase-db (database) does not resolve within 2 s inside {name} (the Docker daemon answers)"
    assert "docker network connect" in found["dns supabase-db"]["hint"]
    assert found["dns coolify-redis"]["status"] == "ok"
    assert "slow or hung" not in result.output
    assert elapsed < 8.0


def test_daemon_down_names_the_socket_the_cli_used(cli, tmp_path, monkeypatch):
    socket_path = tmp_path / "nothing-here.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    raw = subprocess.run(["docker", "inspect", "pms-worker-v2"], capture_output=True, text=True, timeout=20)
    assert f"Cannot connect to the Docker daemon at unix://{socket_path}" in raw.stderr  # the real CLI's words

    result = cli("host", "worker-cmd")

    assert result.exit_code == 1
    assert f"cannot connect to the Docker daemon at unix://{socket_path} (is it running?)" in result.stderr
    assert f"the CLI used unix://{socket_path}" in result.stderr


# --- Docker's real output for a missing object, a missing program, a stopped container -------------------------------


def test_missing_container_on_a_real_engine_is_not_found_with_a_docker_ps_hint(cli, host):
    raw = subprocess.run(["docker", "inspect", "--type", "container", "pms-wroker-v2"], capture_output=True, text=True, timeout=20)
    assert raw.returncode == 1 and raw.stdout.strip() == "[]" and "No such container: pms-wroker-v2" in raw.stderr

    result = cli("host", "worker-cmd", "pms-wroker-v2")

    assert result.exit_code == 1
    assert "container pms-wroker-v2 not found" in result.stderr and "docker ps -a" in result.stderr


def test_container_without_getent_or_python_skips_dns_instead_of_failing(cli, host):
    name = host("pms-worker-noresolver", {"REDIS_URL": GOOD_URL}, python=False)
    raw = subprocess.run(["docker", "exec", name, "getent", "hosts", "coolify-redis"], capture_output=True, text=True, timeout=20)
    assert raw.returncode == 126 and "executable file not found" in raw.stdout  # the OCI message comes on stdout

    result = cli("host", "networks", name, "--json")
    found = results_of(result)

    assert found["dns coolify-redis"]["status"] == "skip"
    assert found["dns coolify-redis"]["summary"] == f"cannot test DNS: neither getent nor python3 exists in {name}"


def test_exec_into_a_stopped_container_says_it_is_not_running_with_its_exit_code(cli, host, docker_scenario):
    name = host("pms-worker-stopped", {"REDIS_URL": GOOD_URL})
    docker_scenario.engine.docker("kill", name)
    docker_scenario.engine.wait_exit(name, 20)

    result = cli("host", "networks", name, "--json")
    found = results_of(result)

    assert found[f"{name} state"]["status"] == "fail"
    assert "exit code 137" in found[f"{name} state"]["summary"]
    assert found["dns coolify-redis"]["status"] == "fail"
    assert f"container {name} is not running (status exited, exit code 137)" in found["dns coolify-redis"]["summary"]


def test_redis_password_from_the_real_containers_command_line_shows_only_a_fingerprint(cli, host):
    result = cli("host", "redis-password", "--container", "coolify-redis", "--json")
    found = results_of(result)

    assert found["requirepass"]["status"] == "ok"
    assert found["requirepass"]["details"]["length"] == len(REQUIREPASS)
    assert REQUIREPASS not in result.output and ENCODED not in result.output
