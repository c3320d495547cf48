"""The fixtures themselves: real servers that demand the special-character passwords."""

import asyncio


def test_redis_fixture_requires_the_special_character_password(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url, socket_timeout=3)
    assert client.ping() is True
    bad = redis.Redis(host="127.0.0.1", port=redis_server.port, password="wrong", socket_timeout=3)
    try:
        bad.ping()
        raise AssertionError("wrong password accepted")
    except redis.AuthenticationError:
        pass


def test_postgres_fixture_uses_scram_over_tcp(postgres):
    import asyncpg

    async def probe():
        conn = await asyncpg.connect(postgres.url, timeout=5)
        try:
            return await conn.fetchval("SHOW password_encryption")
        finally:
            await conn.close()

    assert asyncio.run(probe()) == "scram-sha-256"


def _taken_then_free(monkeypatch):
    """free_port() answers first with a port another process listens on (a parallel worker won the race), then honestly."""
    import socket

    from pmsops.sandbox import servers

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    answers = iter([taken])
    honest = servers.free_port
    monkeypatch.setattr(servers, "free_port", lambda: next(answers, None) or honest())
    return holder, taken


def test_redis_that_loses_its_port_to_another_process_starts_on_a_new_one(monkeypatch):
    import redis

    from pmsops.sandbox.servers import RedisServer

    holder, taken = _taken_then_free(monkeypatch)
    server = RedisServer("pw+/ü").start()
    try:
        assert server.port != taken
        assert redis.Redis.from_url(server.url, socket_timeout=3).ping() is True
    finally:
        server.stop()
        holder.close()


def _select_one(url: str, **options) -> int:
    """``SELECT 1`` through ``url``: the server (or pooler) there is the one that was started."""
    import asyncpg

    async def probe():
        conn = await asyncpg.connect(url, timeout=5, **options)
        try:
            return await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    return asyncio.run(probe())


def test_postgres_that_loses_its_port_to_another_process_starts_on_a_new_one(monkeypatch):
    from pmsops.sandbox.servers import PostgresCluster

    holder, taken = _taken_then_free(monkeypatch)
    cluster = PostgresCluster(password="pw+/ä").start()
    try:
        assert cluster.port != taken
        assert _select_one(cluster.url) == 1
    finally:
        cluster.stop()
        holder.close()


def _variant_port_taken_first(monkeypatch):
    """As :func:`_taken_then_free`, for the variant servers (they take :func:`free_port` by name)."""
    import variant_servers

    holder, taken = _taken_then_free(monkeypatch)
    from pmsops.sandbox import servers

    monkeypatch.setattr(variant_servers, "free_port", servers.free_port)
    return holder, taken


def test_tls_redis_variant_that_loses_its_port_to_another_process_starts_on_new_ones(monkeypatch):
    """Before: the server exited on 'Address already in use' while the fixture, seeing the port open (the other
    process's), handed out that process's port."""
    import redis
    from variant_servers import VariantRedis

    holder, taken = _variant_port_taken_first(monkeypatch)
    server = VariantRedis(password="pw+/ü", tls=True).start()
    try:
        assert server.port != taken and server.tls_port != taken
        assert redis.Redis.from_url(server.url(), socket_timeout=3).ping() is True
    finally:
        server.stop()
        holder.close()


def test_pgbouncer_that_loses_its_port_to_another_process_starts_on_a_new_one(monkeypatch, postgres):
    from variant_servers import PgBouncer

    holder, taken = _variant_port_taken_first(monkeypatch)
    bouncer = PgBouncer(postgres.port, postgres.database, postgres.user, postgres.password, pool_mode="transaction", pool_size=1).start()
    try:
        assert bouncer.port != taken
        assert _select_one(bouncer.url, statement_cache_size=0) == 1
    finally:
        bouncer.stop()
        holder.close()
