"""Rate limits and circuit breakers live in Redis, so every worker sees the same state."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pmsops.sync import limits
from pmsops.sync.errors import CircuitOpen, RateLimited


def _redis(redis_server):
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(redis_server.url_for_db(6))


def test_burst_is_allowed_then_the_limiter_asks_to_retry_later(redis_server, monkeypatch):
    monkeypatch.setitem(limits.LIMITS, "booking_com", limits.PlatformLimits(20, 60, 3, 5, 2, 120))
    account = uuid.uuid4().hex

    async def go():
        client = _redis(redis_server)
        try:
            for _ in range(3):
                await limits.admit(client, "booking_com", account)
            with pytest.raises(RateLimited) as caught:
                await limits.admit(client, "booking_com", account)
            return caught.value.retry_after
        finally:
            await client.aclose()

    retry_after = asyncio.run(go())
    assert 2.0 < retry_after <= 3.1  # one token every 3 s (20 per 60 s)


def _redis_now(time_reply) -> float:
    """Redis's TIME as seconds: the clock the breaker's script reads."""
    seconds, micros = time_reply
    return int(seconds) + int(micros) / 1_000_000


def test_circuit_opens_after_consecutive_failures_and_closes_after_successes(redis_server, monkeypatch):
    platform = "airbnb"
    monkeypatch.setitem(limits.LIMITS, platform, limits.PlatformLimits(10, 1, 15, 3, 2, 0.5))

    async def go():
        client = _redis(redis_server)
        await client.delete(f"pmsops:circuit:{platform}")
        try:
            for _ in range(3):
                await limits.admit(client, platform, "acct")
                await limits.record(client, platform, success=False)
            with pytest.raises(CircuitOpen):
                await limits.admit(client, platform, "acct")
            opened_at = float(await client.hget(f"pmsops:circuit:{platform}", "opened_at"))
            while _redis_now(await client.time()) <= opened_at + 0.5:  # the circuit's open_seconds, on Redis's clock
                await asyncio.sleep(0.05)
            await limits.admit(client, platform, "acct")  # half-open: one call allowed
            assert await limits.record(client, platform, success=True) == "half_open"
            assert await limits.record(client, platform, success=True) == "closed"
            await limits.admit(client, platform, "acct")
        finally:
            await client.aclose()

    asyncio.run(go())


def test_failure_in_half_open_state_reopens_the_circuit(redis_server, monkeypatch):
    platform = "google"
    monkeypatch.setitem(limits.LIMITS, platform, limits.PlatformLimits(100, 1, 150, 1, 3, 0.3))

    async def go():
        client = _redis(redis_server)
        await client.delete(f"pmsops:circuit:{platform}")
        try:
            await limits.record(client, platform, success=False)
            await asyncio.sleep(0.35)
            await limits.admit(client, platform, "acct")
            await limits.record(client, platform, success=False)
            with pytest.raises(CircuitOpen):
                await limits.admit(client, platform, "acct")
        finally:
            await client.aclose()

    asyncio.run(go())


def test_contract_numbers_are_configured_for_every_platform():
    from pmsops.sync import PLATFORMS

    assert set(limits.LIMITS) == set(PLATFORMS)
    assert limits.LIMITS["booking_com"] == limits.PlatformLimits(20, 60, 30, 5, 2, 120)
    assert limits.LIMITS["google"].open_seconds == 30


def test_http_status_maps_to_the_contracts_errors():
    from pmsops.sync.adapters.base import error_for_status
    from pmsops.sync import errors

    assert isinstance(error_for_status("airbnb", 401, ""), errors.PlatformAuthError)
    assert isinstance(error_for_status("airbnb", 403, ""), errors.PlatformAuthError)
    assert isinstance(error_for_status("airbnb", 404, ""), errors.NotFound)
    assert isinstance(error_for_status("airbnb", 400, ""), errors.ValidationFailed)
    assert isinstance(error_for_status("airbnb", 503, ""), errors.PlatformUnavailable)
    limited = error_for_status("airbnb", 429, "", "7")
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 7
    assert error_for_status("airbnb", 204, "") is None


def test_wrong_encryption_key_is_a_permanent_error_that_names_the_cause():
    from pmsops.sync.crypto import decrypt, encrypt, generate_key
    from pmsops.sync.errors import PlatformAuthError

    token = encrypt("tok-123456", generate_key())
    with pytest.raises(PlatformAuthError) as caught:
        decrypt(token, generate_key())
    assert "ENCRYPTION_KEY" in str(caught.value)


def test_platform_error_text_in_a_log_never_carries_our_token_or_secret_fields():
    from pmsops.sync.adapters.base import error_for_status

    body = '{"error": "invalid token tok-live-123456 for listing", "access_token": "tok-live-123456", "api_key": "k-98765"}'
    error = error_for_status("airbnb", 401, body, token="tok-live-123456")
    assert "tok-live-123456" not in str(error) and "k-98765" not in str(error)
    assert "invalid token" in str(error)


def test_redis_outage_does_not_fail_a_push_that_succeeded():
    import asyncio

    from pmsops.sync.operations import _best_effort

    async def broken():
        raise ConnectionError("Error 111 connecting to redis")

    assert asyncio.run(_best_effort(broken())) is None


def test_half_open_circuit_lets_exactly_one_probe_through_at_a_time(redis_server, monkeypatch):
    platform = "fewo_direkt"
    monkeypatch.setitem(limits.LIMITS, platform, limits.PlatformLimits(1000, 1, 1000, 1, 2, 0.2))

    async def go():
        client = _redis(redis_server)
        await client.delete(f"pmsops:circuit:{platform}")
        try:
            await limits.record(client, platform, success=False)  # open
            deadline = asyncio.get_running_loop().time() + 5
            while True:
                try:
                    await limits.admit(client, platform, "probe-wait", probe_lease=0.5)
                    break  # the open window has passed: this call is the first probe
                except CircuitOpen:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.02)
            outcomes = await asyncio.gather(*(limits.admit(client, platform, f"a{n}", probe_lease=0.5) for n in range(20)), return_exceptions=True)
            refused_while_probing = sum(isinstance(o, CircuitOpen) for o in outcomes)
            await limits.record(client, platform, success=True)  # the probe reports: the next one may go
            second = await asyncio.gather(*(limits.admit(client, platform, f"b{n}", probe_lease=0.5) for n in range(20)), return_exceptions=True)
            return refused_while_probing, sum(not isinstance(o, BaseException) for o in second)
        finally:
            await client.aclose()

    refused, admitted_after_report = asyncio.run(go())
    assert (refused, admitted_after_report) == (20, 1)


def test_a_probe_whose_worker_died_frees_the_half_open_circuit_after_its_lease(redis_server, monkeypatch):
    platform = "expedia"
    monkeypatch.setitem(limits.LIMITS, platform, limits.PlatformLimits(1000, 1, 1000, 1, 2, 0.05))

    async def go():
        client = _redis(redis_server)
        await client.delete(f"pmsops:circuit:{platform}")
        try:
            await limits.record(client, platform, success=False)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while True:  # the first admission after the open window is the probe (which then never reports)
                try:
                    await limits.admit(client, platform, "dead", probe_lease=0.3)
                    break
                except CircuitOpen:
                    assert loop.time() < deadline
                    await asyncio.sleep(0.02)
            with pytest.raises(CircuitOpen) as caught:
                await limits.admit(client, platform, "other", probe_lease=0.3)
            while True:
                try:
                    await limits.admit(client, platform, "other", probe_lease=0.3)
                    return caught.value.retry_after
                except CircuitOpen:
                    assert loop.time() < deadline
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    retry_after = asyncio.run(go())  # the lease ran out: another caller probes instead of waiting forever
    assert 0 < retry_after <= 0.3


def test_scripts_run_by_sha_and_are_loaded_again_after_redis_forgot_them(redis_server):
    """EVALSHA on the hot path; a Redis whose script cache was flushed (a restart) gets the script again."""
    account = uuid.uuid4().hex

    async def go():
        client = _redis(redis_server)
        try:
            await client.script_flush()
            first = await limits.admit(client, "booking_com", account)
            loaded = await client.script_exists(limits._SHA[limits._ADMIT])
            second = await limits.admit(client, "booking_com", account)
            tokens = float(await client.hget(f"pmsops:ratelimit:booking_com:{account}", "tokens"))
            return first, second, loaded, tokens
        finally:
            await client.aclose()

    first, second, loaded, tokens = asyncio.run(go())
    assert (first.state, second.state) == ("closed", "closed")
    assert loaded == [True]
    assert 28.0 <= tokens < 28.5  # burst 30, two tokens taken (refill: one every 3 s)


def test_a_backlog_past_the_burst_is_scheduled_at_the_accounts_rate_not_a_doubling_backoff(redis_server, monkeypatch):
    """Each operation past the burst reserves its token: the waits step by 1/rate (3 s at 20 per 60 s), the order in
    which the account may call, and a reserved operation comes back without asking the bucket again (#27 item 10)."""
    monkeypatch.setitem(limits.LIMITS, "booking_com", limits.PlatformLimits(20, 60, 3, 5, 2, 120))
    account = uuid.uuid4().hex

    async def go():
        client = _redis(redis_server)
        try:
            for _ in range(3):
                await limits.admit(client, "booking_com", account)
            waits = []
            for _ in range(4):
                with pytest.raises(RateLimited) as caught:
                    await limits.admit(client, "booking_com", account, horizon=300)
                waits.append((caught.value.reserved, caught.value.retry_after))
            await limits.admit(client, "booking_com", account, reserved=True)  # its token is reserved: admitted at once
            return waits
        finally:
            await client.aclose()

    waits = asyncio.run(go())

    assert [reserved for reserved, _ in waits] == [True] * 4
    steps = [later - earlier for (_, earlier), (_, later) in zip(waits, waits[1:])]
    assert all(2.9 < step < 3.1 for step in steps), waits


def test_a_wait_beyond_the_horizon_reserves_nothing(redis_server, monkeypatch):
    monkeypatch.setitem(limits.LIMITS, "booking_com", limits.PlatformLimits(20, 60, 1, 5, 2, 120))
    account = uuid.uuid4().hex

    async def go():
        client = _redis(redis_server)
        try:
            await limits.admit(client, "booking_com", account)
            outcomes = []
            for _ in range(3):
                with pytest.raises(RateLimited) as caught:
                    await limits.admit(client, "booking_com", account, horizon=2.0)  # the next token is ~3 s away
                outcomes.append((caught.value.reserved, round(caught.value.retry_after)))
            return outcomes
        finally:
            await client.aclose()

    assert asyncio.run(go()) == [(False, 3)] * 3  # nothing taken: every caller is told the same next token
