"""Per-platform rate limits and circuit breakers, kept in Redis so all workers share them.

Numbers are the contract's. Rate limits are token buckets per platform *account*
(platform + connection: partner APIs meter each set of credentials), refilled at
``requests / window`` per second up to ``burst``. Circuit breakers are per
platform (an outage hits every account): after ``failures_to_open`` consecutive
platform failures the circuit opens for ``open_seconds``; then one call at a time
is let through (half-open: a probe holds a lease in the circuit's hash until it
reports back, or until the lease expires should its worker die) until
``successes_to_close`` succeed; every other caller waits (``CircuitOpen`` with a
short ``retry_after``, which does not spend a retry). Both are single
Lua scripts using Redis's clock, so they are atomic and agree across hosts.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from pmsops.sync.errors import CircuitOpen, RateLimited


@dataclass(frozen=True)
class PlatformLimits:
    requests: int
    window_seconds: float
    burst: int
    failures_to_open: int
    successes_to_close: int
    open_seconds: float

    @property
    def rate_per_second(self) -> float:
        return self.requests / self.window_seconds


LIMITS: dict[str, PlatformLimits] = {
    "airbnb": PlatformLimits(10, 1, 15, 5, 2, 60),
    "booking_com": PlatformLimits(20, 60, 30, 5, 2, 120),
    "expedia": PlatformLimits(50, 1, 75, 10, 3, 60),
    "fewo_direkt": PlatformLimits(30, 1, 45, 5, 2, 60),
    "google": PlatformLimits(100, 1, 150, 10, 3, 30),
}

_CIRCUIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local to_open, to_close, open_for = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if op == 'success' then
  if state == 'half_open' then
    redis.call('HDEL', KEYS[1], 'probe_until')
    local s = redis.call('HINCRBY', KEYS[1], 'successes', 1)
    if s >= to_close then redis.call('DEL', KEYS[1]) return {'closed', '0'} end
    return {'half_open', '0'}
  end
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'failures', 0) end
  return {'closed', '0'}
else
  if state == 'half_open' or state == 'open' then
    redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'failures', 0)
    redis.call('HDEL', KEYS[1], 'probe_until')
    return {'open', tostring(open_for)}
  end
  local f = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('EXPIRE', KEYS[1], math.ceil(open_for) * 10)
  if f >= to_open then
    redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now))
    return {'open', tostring(open_for)}
  end
  return {'closed', '0'}
end
"""

_ADMIT = """
-- circuit check (KEYS[1]) and token bucket (KEYS[2]) in one round trip
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local open_for = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if state == 'open' then
  local remaining = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') + open_for - now
  if remaining > 0 then return {'open', tostring(remaining), tostring(failures)} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'successes', 0)
  state = 'half_open'
end
local probe = 0
if state == 'half_open' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
  if lease > now then return {'probing', tostring(lease - now), tostring(failures)} end
  probe = 1
end
local capacity, rate = tonumber(ARGV[2]), tonumber(ARGV[3])
local mode, local_wait, horizon = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
if mode ~= 'reserved' then
  local tokens = tonumber(redis.call('HGET', KEYS[2], 'tokens') or capacity)
  local stamp = tonumber(redis.call('HGET', KEYS[2], 'stamp') or now)
  tokens = math.min(capacity, tokens + (now - stamp) * rate)
  local wait = 0
  if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
  -- a wait longer than the caller waits in place, but within the longest countdown it may take (horizon), is a
  -- reservation: the token is taken now (the bucket goes below zero, by at most horizon x rate), and the caller
  -- comes back when it is due, without asking the bucket again (as GCRA schedules); beyond the horizon nothing is taken
  local reserve = wait > local_wait and wait <= horizon
  if reserve then tokens = tokens - 1 end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'stamp', tostring(now))
  redis.call('EXPIRE', KEYS[2], math.ceil((capacity - tokens) / rate) + 60)
  if reserve then return {'reserved', tostring(wait), tostring(failures)} end
  if wait > 0 then return {'limited', tostring(wait), tostring(failures)} end
end
if probe == 1 then redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[4]))) end
return {state, '0', tostring(failures)}
"""


_SHA = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_CIRCUIT, _ADMIT)}


async def _script(redis, script: str, numkeys: int, *args):
    """EVALSHA, and EVAL (which loads the script) when this Redis does not know it yet: the
    script's 1.5 kB are not sent and hashed again on every call."""
    from redis.exceptions import NoScriptError

    try:
        return await redis.evalsha(_SHA[script], numkeys, *args)
    except NoScriptError:
        return await redis.eval(script, numkeys, *args)


@dataclass(frozen=True)
class Admission:
    state: str
    failures: int

    @property
    def probe(self) -> bool:
        """This call is the half-open circuit's one probe: it must report back (or release)."""
        return self.state == "half_open"

    @property
    def needs_success_record(self) -> bool:
        """A success only has to be written when it changes something (half-open, or failures to reset)."""
        return self.state != "closed" or self.failures > 0


MAX_LOCAL_WAIT = 1.0
"""Wait this long for a rate-limit token inside the task; longer waits become a retry."""


def limits_for(platform: str) -> PlatformLimits:
    return LIMITS[platform]


PROBE_LEASE = 35.0
"""Seconds a half-open probe may take before another caller may probe (its worker may have died)."""


async def admit(redis, platform: str, account: str, probe_lease: float = PROBE_LEASE, reserved: bool = False, horizon: float = 300.0) -> Admission:
    """Circuit check and rate-limit token in one script; raises CircuitOpen or RateLimited.

    A token due within :data:`MAX_LOCAL_WAIT` is waited for here; a later one, due within ``horizon`` (the longest
    countdown the caller may take), is reserved (:class:`RateLimited` with ``reserved`` and the seconds until it is
    due): the caller comes back then with ``reserved=True``, and only the circuit is checked. Beyond the horizon
    nothing is taken (:class:`RateLimited`, not reserved): the caller asks again later."""
    limits = limits_for(platform)
    for _ in range(3):
        state, seconds, failures = await _script(
            redis,
            _ADMIT,
            2,
            f"pmsops:circuit:{platform}",
            f"pmsops:ratelimit:{platform}:{account}",
            limits.open_seconds,
            limits.burst,
            limits.rate_per_second,
            probe_lease,
            "reserved" if reserved else "take",
            MAX_LOCAL_WAIT,
            horizon,
        )
        state = state.decode() if isinstance(state, bytes) else state
        wait = float(seconds)
        if state == "open":
            raise CircuitOpen(f"{platform} circuit open after repeated platform failures; next attempt in {wait:.0f} s", retry_after=wait)
        if state == "probing":
            raise CircuitOpen(f"{platform} circuit half-open: another call is probing; next attempt in {wait:.1f} s", retry_after=min(wait, 5.0))
        if state == "reserved":
            raise RateLimited(
                f"{platform} rate limit ({limits.requests}/{limits.window_seconds:g} s, burst {limits.burst}) reached; "
                f"this call's token is reserved in {wait:.1f} s",
                retry_after=wait,
                reserved=True,
            )
        if state != "limited":
            return Admission(state, int(float(failures)))
        if wait > MAX_LOCAL_WAIT:  # beyond the horizon: nothing reserved
            raise RateLimited(
                f"{platform} rate limit ({limits.requests}/{limits.window_seconds:g} s, burst {limits.burst}) reached", retry_after=wait
            )
        await asyncio.sleep(wait)
    raise RateLimited(f"{platform} rate limit reached", retry_after=1.0)


async def circuit(redis, platform: str, op: str) -> tuple[str, float]:
    limits = limits_for(platform)
    state, seconds = await _script(
        redis, _CIRCUIT, 1, f"pmsops:circuit:{platform}", op, limits.failures_to_open, limits.successes_to_close, limits.open_seconds
    )
    return (state.decode() if isinstance(state, bytes) else state), float(seconds)


async def release_probe(redis, platform: str) -> None:
    """A probe that ended without a platform verdict (a 4xx, a cancellation) frees the lease."""
    await redis.hdel(f"pmsops:circuit:{platform}", "probe_until")


async def record(redis, platform: str, success: bool) -> str:
    state, _ = await circuit(redis, platform, "success" if success else "failure")
    return state
