"""The setting every fault scenario shares (tests/test_faults_sync.py, tests/test_faults_leases.py): a restartable
Redis of the module's own, two real workers per scenario, the counting proxy, and the figures each asserts.

Import the fixtures into a scenario module: ``from fault_scenarios import fault_redis, stack  # noqa: F401``."""

from __future__ import annotations

import os

import pytest

from conftest import ENCRYPTION_KEY, PG_PASSWORD, REDIS_PASSWORD
from sync_helpers import (
    FAULT_SYNCS,
    figures,
    logs_for,
    make_fault_stack,
    trigger_full_syncs,
    wait_until,
)

SECRETS = (REDIS_PASSWORD, PG_PASSWORD, "platform-token-123", ENCRYPTION_KEY)


@pytest.fixture(scope="module")
def fault_redis():
    """A Redis of its own (the scenarios restart it), persisted as the reference stack's is."""
    from pmsops.sandbox.servers import RedisServer

    server = RedisServer(REDIS_PASSWORD, appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def stack(request, fault_redis, sync_db, fake_platform):
    made = []

    def build(db: int, **extra):
        fake_platform.reset()
        built = make_fault_stack(fault_redis, db, sync_db, fake_platform.url, **extra)
        made.append(built)
        return built

    yield build
    for built in made:
        built.stop_all()
        built.proxy.close()


def assert_figures(stack, task_ids: list[str], all_success: bool = True):
    found = figures(stack.database_url, task_ids, stack.proxy, SECRETS)
    print("figures:", found.summary())
    assert found.lost == [], found.summary()
    assert found.open == [], found.summary()
    assert found.unrecorded_duplicates == [], found.summary()
    assert found.untrue == [], found.untrue[:5]
    assert found.leaked == [], found.summary()
    if all_success:
        assert found.statuses == {"success": len(task_ids)}, found.summary()
    return found


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _running(database_url: str, task_ids: list[str], worker_prefix: str | None = None) -> list[dict]:
    rows = [r for r in logs_for(database_url, task_ids) if r and r["status"] == "running" and r["details"].get("in_flight")]
    return [r for r in rows if worker_prefix is None or str(r["details"].get("worker", "")).startswith(worker_prefix)]


def busy_threads_worker(stack, db: int):
    """Both workers on ``FAULT_SYNCS`` full syncs (each platform call 0.3 s, so work stays in flight), once the threads
    worker holds some: (the stack, the task ids, the threads worker's name) for the fault to strike it."""
    s = stack(db)
    s.start_both()
    s.proxy.delay = 0.3
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    name = f"threads{s.db}@faults"
    wait_until(lambda: _running(s.database_url, task_ids, "threads"), 30, "no operation running on the threads worker")
    return s, task_ids, name
