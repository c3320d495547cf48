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
