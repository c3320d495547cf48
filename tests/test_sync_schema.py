"""db migrate and db check: idempotent migrations, schema drift the runbook names."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from sync_helpers import run


@pytest.fixture
def scratch_db(postgres):
    """A fresh empty database, owned by the test user."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    run(postgres.superuser_url, lambda c: c.execute(f'CREATE DATABASE {name} OWNER "{postgres.user}"'))
    yield postgres.url.rsplit("/", 1)[0] + "/" + name
    run(postgres.superuser_url, lambda c: c.execute(f"DROP DATABASE {name} WITH (FORCE)"))


def test_migrate_applies_once_and_is_a_no_op_the_second_time(cli, scratch_db):
    first = cli("db", "migrate", "--database-url", scratch_db)
    assert first.exit_code == 0, first.output
    assert "applied 0001_channel_manager" in first.stdout
    second = cli("db", "migrate", "--database-url", scratch_db)
    assert second.exit_code == 0 and "schema up to date" in second.stdout


def test_concurrent_migrations_do_not_collide(scratch_db):
    from pmsops.sync.maintenance import migrate_database

    outcomes: list[object] = []

    def migrate() -> None:
        try:
            outcomes.append(migrate_database(scratch_db)[0].details["applied"])
        except Exception as exc:  # noqa: BLE001
            outcomes.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, outcomes)) == sorted(["['0001_channel_manager', '0002_sync_leases', '0003_finished_index']", "[]", "[]"])


def test_db_check_passes_on_the_migrated_schema(cli, sync_db):
    result = cli("db", "check", "--database-url", sync_db)
    assert result.exit_code == 0, result.output
    assert "all 5 values accepted" in result.stdout


def test_missing_table_is_reported(cli, scratch_db):
    result = cli("db", "check", "--database-url", scratch_db)
    assert result.exit_code == 1
    assert "✗ table channel_sync_logs FAILED  missing" in result.stdout


def test_check_constraint_rejecting_an_operation_type_is_reported(cli, scratch_db):
    from pmsops.sync.maintenance import migrate_database

    migrate_database(scratch_db)

    async def narrow(conn):
        name = await conn.fetchval(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'channel_sync_logs'::regclass AND pg_get_constraintdef(oid) LIKE '%operation_type%'"
        )
        await conn.execute(f"ALTER TABLE channel_sync_logs DROP CONSTRAINT {name}")
        await conn.execute(
            "ALTER TABLE channel_sync_logs ADD CONSTRAINT old_ops CHECK (operation_type IN ('availability_update', 'pricing_update',"
            " 'bookings_import'))"
        )
        await conn.execute("ALTER TABLE channel_sync_logs DROP COLUMN batch_id")

    run(scratch_db, narrow)
    result = cli("db", "check", "--database-url", scratch_db, "--json")
    assert result.exit_code == 1
    import json

    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert "full_sync" in report["check operation_type"]["summary"] and "bookings_sync" in report["check operation_type"]["summary"]
    assert "batch_id" in report["table channel_sync_logs"]["summary"]


def test_db_check_writes_nothing(sync_db):
    before = run(sync_db, lambda c: c.fetchval("SELECT count(*) FROM channel_sync_logs"))
    from pmsops.sync.maintenance import check_database_schema

    check_database_schema(sync_db)
    assert run(sync_db, lambda c: c.fetchval("SELECT count(*) FROM channel_sync_logs")) == before
