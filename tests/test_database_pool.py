"""The sync worker's pool against a real PostgreSQL: what a release costs."""

from __future__ import annotations

import asyncio

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


# --- pooler mode: no prepared statements, one round trip per query ------------------------------------------


class FrontendMessageCounter:
    """A loopback TCP relay to PostgreSQL that counts the client's protocol messages by type (P Parse,
    D Describe, B Bind, E Execute, S Sync): what a query costs in messages and round trips."""

    SSL_REQUEST, GSS_REQUEST = 80877103, 80877104

    def __init__(self, upstream_port: int) -> None:
        import socket
        import threading
        from collections import Counter

        self.upstream_port, self.counts, self.lock = upstream_port, Counter(), threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            threading.Thread(target=self._client_to_server, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _client_to_server(self, client, upstream) -> None:
        import struct

        buffer, typed = b"", False
        try:
            while data := client.recv(65536):
                buffer += data
                while True:
                    if not typed:  # SSLRequest / GSSENCRequest / StartupMessage: a length, no type byte
                        if len(buffer) < 8:
                            break
                        length, code = struct.unpack("!ii", buffer[:8])
                        if len(buffer) < length:
                            break
                        buffer, typed = buffer[length:], code not in (self.SSL_REQUEST, self.GSS_REQUEST)
                        continue
                    if len(buffer) < 5:
                        break
                    length = struct.unpack("!i", buffer[1:5])[0]
                    if len(buffer) < 1 + length:
                        break
                    with self.lock:
                        self.counts[chr(buffer[0])] += 1
                    buffer = buffer[1 + length :]
                upstream.sendall(data)  # after counting: the server's answer comes after the count, so a snapshot sees it
        except OSError:
            pass
        finally:
            self._shut(client, upstream)

    def _pipe(self, source, target) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._shut(source, target)

    @staticmethod
    def _shut(*socks) -> None:
        for sock in socks:
            try:
                sock.shutdown(2)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


async def _messages_for_repeated_queries(relay: FrontendMessageCounter, url: str, statement_cache_size: int, times: int = 5) -> dict[str, int]:
    """Protocol messages the client sent for ``times`` more runs of one query with an argument, after a first."""
    pool = await create_pool(url, 1, 5.0, 5.0, statement_cache_size=statement_cache_size, reset_session=False)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT $1::int + 1", 0) == 1
            before = relay.snapshot()
            results = [await conn.fetchval("SELECT $1::int + 1", n) for n in range(times)]
            after = relay.snapshot()
        assert results == [n + 1 for n in range(times)]
        return {kind: after.get(kind, 0) - before.get(kind, 0) for kind in "PDBES"}
    finally:
        await pool.close()


def _messages_sent(postgres, statement_cache_size: int) -> dict[str, int]:
    from urllib.parse import urlsplit, urlunsplit

    relay = FrontendMessageCounter(postgres.port)
    parts = urlsplit(postgres.url)
    url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{relay.port}"))
    try:
        return asyncio.run(_messages_for_repeated_queries(relay, url, statement_cache_size))
    finally:
        relay.close()


def test_without_prepared_statements_a_repeated_query_is_one_round_trip_not_two(postgres):
    """Pooler mode: asyncpg alone sends Parse+Describe+Sync, then Parse+Bind+Execute+Sync, for every query."""
    assert _messages_sent(postgres, statement_cache_size=0) == {
        "P": 5,
        "D": 0,
        "B": 5,
        "E": 5,
        "S": 5,
    }  # an unnamed statement, parsed within its own Sync


def test_with_the_statement_cache_a_repeated_query_is_bound_to_its_prepared_statement(postgres):
    assert _messages_sent(postgres, statement_cache_size=100) == {"P": 0, "D": 0, "B": 5, "E": 5, "S": 5}


def test_a_column_type_changed_by_a_migration_is_read_right_once_the_description_expires(postgres, monkeypatch):
    import pmsops.database as database

    monkeypatch.setattr(database, "DESCRIPTION_TTL", 0.0)  # every use re-describes: what a later use sees after 10 s

    async def scenario() -> tuple:
        pool = await create_pool(postgres.url, 1, 5.0, 5.0, statement_cache_size=0, reset_session=False)
        try:
            async with pool.acquire() as conn:
                await conn.execute("DROP TABLE IF EXISTS ttl_probe; CREATE TABLE ttl_probe (id int, v int)")
                await conn.execute("INSERT INTO ttl_probe VALUES (1, 7)")
                query = "SELECT v FROM ttl_probe WHERE id = $1"
                first = await conn.fetchval(query, 1)
                await conn.execute("ALTER TABLE ttl_probe ALTER COLUMN v TYPE text USING 'seven'")
                return first, await conn.fetchval(query, 1)
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == (7, "seven")


def test_a_column_type_changed_within_the_descriptions_lifetime_fails_one_query_and_the_next_reads_it_right(postgres):
    async def scenario() -> tuple:
        pool = await create_pool(postgres.url, 1, 5.0, 5.0, statement_cache_size=0, reset_session=False)
        try:
            async with pool.acquire() as conn:
                await conn.execute("DROP TABLE IF EXISTS stale_probe; CREATE TABLE stale_probe (id int, v int)")
                await conn.execute("INSERT INTO stale_probe VALUES (1, 7)")
                query = "SELECT v FROM stale_probe WHERE id = $1"
                first = await conn.fetchval(query, 1)
                await conn.execute("ALTER TABLE stale_probe ALTER COLUMN v TYPE text USING 'seven'")
                try:
                    await conn.fetchval(query, 1)
                    failed = False
                except Exception:  # noqa: BLE001 - the new bytes decoded with the old column type
                    failed = True
                return first, failed, await conn.fetchval(query, 1)
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == (7, True, "seven")  # one failed query, then the new type
