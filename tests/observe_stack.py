"""The outage ``top`` and ``report`` are tested against: the reference stack with its platform
stopped (so syncs fail and the airbnb breaker opens) and then its worker stopped.

Import the fixture into a test module: ``from observe_stack import outage  # noqa: F401``.
It is module-scoped and puts everything back (platform, worker, breaker and rate-limit
keys) so the session's other sandbox tests see a healthy stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Outage:
    env_file: str
    env: dict[str, str]
    worker_log: str
    failing_platform: str
    opened_at: float
    task_ids: list[str]


def _redis(env: dict[str, str]):
    from pmsops.checks.redis import client_for

    return client_for(env["REDIS_URL"], 3.0)


def _api(env: dict[str, str]):
    from pmsops.api.client import ApiClient
    from pmsops.api.token import obtain
    from pmsops.settings import Settings

    return ApiClient(env["PMS_API_URL"], obtain(Settings.from_environ(env)).token)


def connection_of(env: dict[str, str], platform: str) -> str:
    """The sandbox's connection id for ``platform`` (one per platform)."""
    with _api(env) as client:
        items, _ = client.list_connections()
        return next(c["id"] for c in items if c["platform_type"] == platform)


def _trigger_full_syncs(env: dict[str, str], platform: str, count: int) -> list[str]:
    cid = connection_of(env, platform)
    with _api(env) as client:
        return [t for _ in range(count) for t in client.trigger_sync(cid, "full")["task_ids"]]


def _retrying_behind_the_breaker(env: dict[str, str], task_ids: list[str]) -> bool:
    """Every operation has failed and is waiting for its retry behind the open breaker."""
    from pmsops.sync.maintenance import with_connection

    async def count(conn) -> int:
        return await conn.fetchval(
            "SELECT count(*) FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND details->>'error_type' = 'circuit_open'", task_ids
        )

    return with_connection(env["DATABASE_URL"], count) == len(task_ids)


def _wait_for(condition, timeout: float, what: str):
    from pmsops.sandbox.processes import wait_until

    return wait_until(condition, timeout, f"waiting for {what}: not done")


def reset_limits(env: dict[str, str]) -> None:
    """Close every breaker and refill every bucket: what one test did to a platform never decides another's verdict."""
    client = _redis(env)
    try:
        keys = list(client.scan_iter("pmsops:circuit:*")) + list(client.scan_iter("pmsops:ratelimit:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def outage(sandbox):
    """Platform stopped → two full syncs fail → airbnb breaker open, retries wait behind it → worker stopped."""
    env = sandbox.env()
    platform = "airbnb"
    sandbox.stop("platform")
    try:
        task_ids = _trigger_full_syncs(env, platform, 2)
        client = _redis(env)
        try:
            _wait_for(lambda: client.hget(f"pmsops:circuit:{platform}", "state") == b"open", 20, f"the {platform} breaker to open")
            opened_at = float(client.hget(f"pmsops:circuit:{platform}", "opened_at"))
        finally:
            client.close()
        _wait_for(lambda: _retrying_behind_the_breaker(env, task_ids), 20, "every failed sync to wait behind the open breaker")
        sandbox.stop("worker")
        yield Outage(str(sandbox.env_path), env, str(sandbox.directory / "worker.log"), platform, opened_at, task_ids)
    finally:
        sandbox.start("platform")
        reset_limits(env)
        sandbox.start("worker")
