"""Sync settings from the environment (runbook and contract names, documented defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pmsops.sync import PLATFORMS


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def _float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def platform_url(platform: str) -> str | None:
    """Base URL of a platform's API: PLATFORM_URL_<NAME>, else PLATFORM_BASE_URL + /<name>."""
    specific = os.environ.get(f"PLATFORM_URL_{platform.upper()}")
    if specific:
        return specific.rstrip("/")
    base = os.environ.get("PLATFORM_BASE_URL")
    return f"{base.rstrip('/')}/{platform}" if base else None


@dataclass(frozen=True)
class SyncConfig:
    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL"))
    redis_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL"))
    encryption_key: str | None = field(default_factory=lambda: os.environ.get("ENCRYPTION_KEY"))
    statement_cache_size: int = field(default_factory=lambda: _int("DB_STATEMENT_CACHE_SIZE", 0 if _bool("DB_TRANSACTION_POOLER", False) else 100))
    pool_max_size: int = field(default_factory=lambda: _int("SYNC_DB_POOL_SIZE", _int("CELERY_CONCURRENCY", 4) + 1))
    preflight_timeout: float = field(default_factory=lambda: _float("SYNC_PREFLIGHT_TIMEOUT", 5.0))
    platform_timeout: float = field(default_factory=lambda: _float("PLATFORM_TIMEOUT", 30.0))
    time_limit: float = field(default_factory=lambda: _float("CELERY_TIME_LIMIT", 300.0))
    window_days: int = field(default_factory=lambda: _int("SYNC_WINDOW_DAYS", 90))
    stale_minutes: float = field(default_factory=lambda: _float("SYNC_LOG_STALE_MINUTES", 60.0))
    rate_limits_enabled: bool = field(default_factory=lambda: _bool("SYNC_RATE_LIMITS", True))

    def platform_urls(self) -> dict[str, str | None]:
        return {p: platform_url(p) for p in PLATFORMS}


RETRY_BASE_SECONDS = _float("SYNC_RETRY_BASE", 1.0)
MAX_RETRIES = _int("SYNC_MAX_RETRIES", 3)
RETRY_JITTER = _bool("SYNC_RETRY_JITTER", False)
RETRY_BACKOFF_MAX = _float("SYNC_RETRY_BACKOFF_MAX", 600.0)
