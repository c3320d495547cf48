"""Sync settings: parsed once from the environment, checked, then passed around.

One object (:class:`SyncSettings`) holds every knob of the sync library; the Celery
app, the tasks, the runtime and the sweeper take it from their caller instead of
reading ``os.environ`` themselves. A bad value is a :class:`ConfigError` (a
:class:`~pmsops.errors.UsageError`: exit 2, one line), never a silent default.

Time budget (one deadline per task, one grace)::

    asyncio deadline        CELERY_TIME_LIMIT (300 s): the operation is cancelled there
    hard limit              CELERY_TIME_LIMIT + TIME_LIMIT_GRACE (10 s): Celery's task_time_limit
    retry countdown         backoff(n) = SYNC_RETRY_BASE × 2^n, capped at SYNC_RETRY_BACKOFF_MAX
    invariant               hard limit + SYNC_RETRY_BACKOFF_MAX < CELERY_VISIBILITY_TIMEOUT
                            (else Redis redelivers a task that is only waiting, and it runs twice)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from pmsops.database import statement_cache_setting
from pmsops.settings import ConfigError, parse_bool, parse_float, parse_int  # noqa: F401 - the one home of each
from pmsops.sync import PLATFORMS

TIME_LIMIT_GRACE = 10.0
"""Seconds between the operation's own deadline and Celery's hard kill: room to write the log."""


def platform_url(platform: str, env: Mapping[str, str] | None = None) -> str | None:
    """Base URL of a platform's API: PLATFORM_URL_<NAME>, else PLATFORM_BASE_URL + /<name>."""
    env = os.environ if env is None else env
    specific = env.get(f"PLATFORM_URL_{platform.upper()}")
    if specific:
        return specific.rstrip("/")
    base = env.get("PLATFORM_BASE_URL")
    return f"{base.rstrip('/')}/{platform}" if base else None


def backoff(retries: int, base: float, cap: float, jitter: float = 0.0) -> float:
    """The delay before error retry number ``retries + 1``: ``base × 2^retries`` capped at ``cap``.

    Pure: ``jitter`` is a number in [0, 1) the caller draws (0 = none); the delay is then
    reduced by up to half, so a fleet does not retry in lock-step."""
    delay = min(base * (2 ** max(retries, 0)), cap)
    return delay * (1 - jitter / 2)


@dataclass(frozen=True)
class SyncSettings:
    """Every knob of the sync library (runbook names; documented defaults)."""

    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    result_backend: str | None = None
    encryption_key: str | None = field(default=None, repr=False)
    statement_cache_size: int = 0  # pooler-safe (pmsops.database.pooler_safe_statement_cache)
    pool_max_size: int = 5
    concurrency: int = 4
    preflight_timeout: float = 5.0
    platform_timeout: float = 30.0
    time_limit: float = 300.0
    retry_base: float = 1.0
    max_retries: int = 3
    retry_jitter: bool = False
    retry_backoff_max: float = 300.0
    wait_max: float = 1800.0
    visibility_timeout: float = 900.0
    restore_interval: float = 10.0
    sweep_interval: float = 15.0
    lease_seconds: float = 45.0
    resend_after: float = 60.0
    max_resends: int = 3
    stale_seconds_override: float | None = None
    window_days: int = 90
    rate_limits_enabled: bool = True
    max_tasks_per_child: int | None = None
    platform_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SyncSettings":
        """Parse and check; raises :class:`ConfigError` on the first bad value."""
        env = os.environ if env is None else env
        concurrency = parse_int(env, "CELERY_CONCURRENCY", 4, minimum=1)
        time_limit = parse_float(env, "CELERY_TIME_LIMIT", 300.0, minimum=1.0)
        backoff_max = parse_float(env, "SYNC_RETRY_BACKOFF_MAX", 300.0, minimum=0.0)
        stale_minutes = parse_float(env, "SYNC_LOG_STALE_MINUTES", 0.0, minimum=0.0)
        per_child = parse_int(env, "CELERY_MAX_TASKS_PER_CHILD", 0, minimum=0)
        settings = cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or env.get("CELERY_BROKER_URL") or None,
            broker_url=env.get("CELERY_BROKER_URL") or env.get("REDIS_URL") or None,
            result_backend=env.get("CELERY_RESULT_BACKEND") or None,
            encryption_key=env.get("ENCRYPTION_KEY") or None,
            statement_cache_size=statement_cache_setting(env)[0],  # unset: a pooler may be in front (Supabase's is): none
            # one connection per running attempt, plus the lease renewer's and the sweeper's
            pool_max_size=parse_int(env, "SYNC_DB_POOL_SIZE", concurrency + 2, minimum=1),
            concurrency=concurrency,
            preflight_timeout=parse_float(env, "SYNC_PREFLIGHT_TIMEOUT", 5.0, minimum=0.1),
            platform_timeout=parse_float(env, "PLATFORM_TIMEOUT", 30.0, minimum=0.1),
            time_limit=time_limit,
            retry_base=parse_float(env, "SYNC_RETRY_BASE", 1.0, minimum=0.0),
            max_retries=parse_int(env, "SYNC_MAX_RETRIES", 3),
            retry_jitter=parse_bool(env, "SYNC_RETRY_JITTER", False),
            retry_backoff_max=backoff_max,
            wait_max=parse_float(env, "SYNC_WAIT_MAX", 1800.0, minimum=0.0),
            visibility_timeout=parse_float(env, "CELERY_VISIBILITY_TIMEOUT", max(3 * time_limit, 900.0), minimum=1.0),
            restore_interval=parse_float(env, "CELERY_UNACKED_RESTORE_INTERVAL", 10.0, minimum=0.1),
            sweep_interval=parse_float(env, "SYNC_REAP_INTERVAL", 15.0, minimum=0.0),
            # how long a claimed attempt holds its operation without a renewal (every third of it): a dead worker's
            # operation is sent again within this plus a sweep (SYNC_WORKER_HEARTBEAT_TTL: its name before leases)
            lease_seconds=parse_float(env, "SYNC_LEASE_SECONDS", parse_float(env, "SYNC_WORKER_HEARTBEAT_TTL", 45.0, minimum=1.0), minimum=1.0),
            resend_after=parse_float(env, "SYNC_RESEND_AFTER", 60.0, minimum=0.0),
            max_resends=parse_int(env, "SYNC_MAX_RESENDS", 3),
            stale_seconds_override=stale_minutes * 60 if stale_minutes else None,
            window_days=parse_int(env, "SYNC_WINDOW_DAYS", 90, minimum=1),
            rate_limits_enabled=parse_bool(env, "SYNC_RATE_LIMITS", True),
            max_tasks_per_child=per_child or None,
            platform_env=tuple(sorted((k, v) for k, v in env.items() if k == "PLATFORM_BASE_URL" or k.startswith("PLATFORM_URL_"))),
        )
        return settings

    # --- derived values: the one home of each figure --------------------------------------------

    @property
    def hard_time_limit(self) -> float:
        """Celery's kill deadline: the operation's own deadline plus the one grace."""
        return self.time_limit + TIME_LIMIT_GRACE

    def backoff(self, retries: int, jitter: float = 0.0) -> float:
        return backoff(retries, self.retry_base, self.retry_backoff_max, jitter if self.retry_jitter else 0.0)

    @property
    def max_countdown(self) -> float:
        """No retry waits longer than this (a wait for an open breaker or a Retry-After included)."""
        return self.retry_backoff_max

    @property
    def retry_budget(self) -> float:
        """Worst-case time a task spends in error retries: every attempt's deadline and every backoff."""
        return sum(self.backoff(n) for n in range(self.max_retries)) + (self.max_retries + 1) * self.hard_time_limit

    @property
    def stale_seconds(self) -> float:
        """When an open log with no live message and no live worker may be declared failed."""
        if self.stale_seconds_override is not None:
            return self.stale_seconds_override
        return self.retry_budget + self.visibility_timeout

    def invariant_violations(self) -> list[str]:
        """What makes Redis redeliver a task that is only waiting or running (it would run twice)."""
        problems = []
        if self.hard_time_limit + self.max_countdown >= self.visibility_timeout:
            problems.append(
                f"CELERY_VISIBILITY_TIMEOUT={self.visibility_timeout:g} s must exceed CELERY_TIME_LIMIT + grace "
                f"({self.hard_time_limit:g} s) + SYNC_RETRY_BACKOFF_MAX ({self.max_countdown:g} s): a task waiting for its retry "
                "longer than the visibility timeout is redelivered and runs twice"
            )
        return problems

    def check(self) -> "SyncSettings":
        """Raise :class:`ConfigError` when the settings break the visibility-timeout invariant."""
        problems = self.invariant_violations()
        if problems:
            raise ConfigError(problems[0])
        return self

    def platform_urls(self) -> dict[str, str | None]:
        env = dict(self.platform_env)
        return {p: platform_url(p, env) for p in PLATFORMS}

    def platform_url(self, platform: str) -> str | None:
        return platform_url(platform, dict(self.platform_env))


def load() -> SyncSettings:
    """The process's settings, parsed once (the worker, the API, the CLI)."""
    global _loaded
    if _loaded is None:
        _loaded = SyncSettings.from_env()
    return _loaded


def reset() -> None:
    """Forget the parsed settings (tests that change the environment)."""
    global _loaded
    _loaded = None


_loaded: SyncSettings | None = None
