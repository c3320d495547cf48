"""The sync worker's pool against a real PostgreSQL: what a release costs."""

from __future__ import annotations

import asyncio

import pytest

from pmsops.database import connect, create_pool


async def _last_query_after_release(url: str, reset_session: bool) -> str:
    pool = await create_pool(url, 1, 5.0, 5.0, reset_session=reset_session)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SELECT 42")
        observer = await connect(url, 5.0)
        try:
            deadline = asyncio.get_running_loop().time() + 5
            while True:  # the release's own query, if any, shows once the backend is idle again
                row = await observer.fetchrow("SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid)
                if row["state"] == "idle" or asyncio.get_running_loop().time() > deadline:
                    return row["query"]
                await asyncio.sleep(0.02)
        finally:
            await observer.close()
    finally:
        await pool.close()


def test_the_sync_workers_pool_releases_a_connection_without_a_reset_round_trip(postgres):
    assert asyncio.run(_last_query_after_release(postgres.url, reset_session=False)) == "SELECT 42"


def test_a_default_pool_still_resets_the_session_on_release(postgres):
    assert "RESET ALL" in asyncio.run(_last_query_after_release(postgres.url, reset_session=True))


def test_a_transaction_left_open_is_rolled_back_on_release_without_the_reset(postgres):
    async def scenario() -> tuple[bool, int]:
        pool = await create_pool(postgres.url, 1, 5.0, 5.0, reset_session=False)
        try:
            conn = await pool.acquire()
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS leak_probe (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO leak_probe VALUES (1)")
            await pool.release(conn)
            async with pool.acquire() as again:
                return again.is_in_transaction(), await again.fetchval("SELECT count(*) FROM leak_probe")
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == (False, 0)


# --- a migration while the workers run ---------------------------------------------------------------------


@pytest.mark.parametrize("statement_cache_size", [0, 100], ids=["pooler-mode", "prepared-statements"])
def test_a_pooled_connection_writes_and_reads_the_right_value_right_after_a_migration_changes_the_column_type(postgres, statement_cache_size):
    """A client that reused a query's old description sent 5 as an integer's bytes into the real column (stored: 7e-45)
    and read them back as 5 with the old codec: the value is checked by a query new to the client too."""

    async def scenario() -> tuple:
        pool = await create_pool(postgres.url, 1, 5.0, 5.0, statement_cache_size=statement_cache_size, reset_session=False)
        try:
            async with pool.acquire() as conn:
                table = f"migrated_{statement_cache_size}"
                await conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, v int)")
                await conn.execute(f"INSERT INTO {table} VALUES (1, 0)")
                write, read = f"UPDATE {table} SET v = $1 WHERE id = $2", f"SELECT v FROM {table} WHERE id = $1"
                await conn.execute(write, 4, 1)
                before = await conn.fetchval(read, 1)
                await conn.execute(f"ALTER TABLE {table} ALTER COLUMN v TYPE real")  # the API's migration, mid-run
                await conn.execute(write, 5, 1)
                stored = await conn.fetchval(f"SELECT v::text FROM {table} WHERE id = $1", 1)  # a query new to the client
                return before, stored, await conn.fetchval(read, 1)
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == (4, "5", 5.0)
