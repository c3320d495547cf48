"""``pmsops host check``: every host diagnosis for the runbook's containers in one run.

One broken part fails its own lines and the run (exit 1); the other parts still run.
The recorded Coolify host runs on the real Docker engine (tests/host_engine.py).
"""

from __future__ import annotations

import json

from host_engine import recorded_host, start_recorded_host  # noqa: F401  (the recorded host on the real Docker engine)

SECTIONS = [
    "coolify-redis state",
    "pms-worker-v2 state",
    "pms-backend state",
    "requirepass",
    "password-hash",
    "start command",
    "user",
    "image",
    "networks",
    "dns supabase-db",
    "dns coolify-redis",
    "required variables",
    "recommended variables",
    "shared values",
    "redis urls",
    "other variables",
    "logs ready",
    "logs tasks",
    "logs errors",
    "git commit",
]


def report(result) -> dict:
    return json.loads(result.stdout)


def statuses(result) -> dict[str, str]:
    return {r["name"]: r["status"] for r in report(result)["results"]}


def test_healthy_deployment_passes_every_part_exit_0(cli, recorded_host):
    start_recorded_host(recorded_host)

    result = cli("host", "check", "--json")

    assert result.exit_code == 0, result.stdout
    data = report(result)
    assert data["command"] == "host check" and data["status"] == "ok"
    assert list(statuses(result)) == SECTIONS
    assert set(statuses(result).values()) <= {"ok", "skip"}, statuses(result)


def test_worker_with_a_start_command_override_fails_the_check_and_everything_else_still_runs(cli, recorded_host):
    recorded_host.redis()
    recorded_host.backend()
    recorded_host.worker(cmd=("/bin/sh", "-c", "celery -A app.channel_manager.core.sync_engine:celery_app worker"))

    result = cli("host", "check", "--json")

    assert result.exit_code == 1
    assert statuses(result)["start command"] == "fail"
    assert list(statuses(result)) == SECTIONS


def test_missing_backend_container_fails_its_parts_and_the_worker_is_still_checked(cli, recorded_host):
    recorded_host.redis()
    recorded_host.worker()

    result = cli("host", "check", "--json")

    got = statuses(result)
    assert result.exit_code == 1
    assert got["pms-backend state"] == "fail"
    assert got["environment"] == "fail"  # env-diff needs the backend
    assert got["start command"] == "ok" and got["dns supabase-db"] == "ok" and got["logs ready"] == "ok"
    assert {r["name"]: r for r in report(result)["results"]}["pms-backend state"]["summary"] == "container pms-backend not found"


def test_container_names_can_be_overridden(cli, recorded_host):
    recorded_host.redis("redis-main")
    recorded_host.backend("api")
    recorded_host.worker("pms-worker")

    result = cli("host", "check", "--redis", "redis-main", "--worker", "pms-worker", "--backend", "api", "--json")

    assert result.exit_code == 0, result.stdout
    assert "pms-worker ready" in {r["name"]: r for r in report(result)["results"]}["logs ready"]["summary"].replace(
        "celery@pms-worker-v2", "pms-worker"
    )


def test_local_checkout_adds_the_code_hash_part(cli, recorded_host, tmp_path):
    start_recorded_host(recorded_host)
    local = tmp_path / "sync_engine.py"
    local.write_text("stale\n")

    result = cli("host", "check", "--local", str(local), "--json")

    assert statuses(result)["code hash"] == "fail"
    assert result.exit_code == 1


def test_warnings_alone_pass_unless_strict(cli, recorded_host):
    recorded_host.redis()
    recorded_host.backend()
    recorded_host.worker(user="root")

    assert cli("host", "check").exit_code == 0
    assert cli("host", "check", "--strict").exit_code == 1


def test_text_output_lists_every_part_with_its_symbol(cli, recorded_host):
    start_recorded_host(recorded_host)

    result = cli("host", "check")

    for name in ("requirepass", "start command", "networks", "redis urls", "logs ready"):
        assert f"✓ {name}" in result.stdout
