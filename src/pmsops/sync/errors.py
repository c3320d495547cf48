"""Sync errors: transient ones retry with backoff, permanent ones fail at once.

::

    SyncError
    ├── TransientSyncError        retried by Celery (autoretry_for), 1 s, 2 s, 4 s
    │   ├── DatabaseUnavailable   pre-flight SELECT 1 failed (error_type database_unavailable)
    │   ├── PlatformUnavailable   platform 5xx
    │   ├── PlatformTimeout       no answer within the adapter timeout
    │   ├── RateLimited           429 (honours Retry-After) or our own limiter
    │   └── CircuitOpen           too many recent failures of this platform
    ├── NotClaimed                this delivery holds no claim (a duplicate, or its lease was taken): acked, nothing written
    └── PermanentSyncError        fails at once
        ├── ValidationFailed      400, or bad data on our side
        ├── NotFound              404, or a connection that does not exist
        ├── PlatformAuthError     401/403: the platform token is invalid
        ├── TenantMismatch        the connection's agency is not its property's agency
        └── TimeLimitExceeded     the task ran out of CELERY_TIME_LIMIT
"""

from __future__ import annotations


class SyncError(Exception):
    error_type = "sync_error"
    label = "Sync error"
    transient = False
    retry_after: float | None = None

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


class TransientSyncError(SyncError):
    transient = True


class NotClaimed(SyncError):
    """This delivery does not hold the operation: another attempt claimed it, or the sweeper took it after this
    attempt's lease ran out. The task stops without writing anything (the log belongs to the other attempt)."""

    error_type = "not_claimed"
    label = "Not claimed"


class DatabaseUnavailable(TransientSyncError):
    error_type = "database_unavailable"
    label = "Database unavailable"


class PlatformUnavailable(TransientSyncError):
    error_type = "platform_error"
    label = "Platform error"


class PlatformTimeout(TransientSyncError):
    error_type = "timeout"
    label = "Platform timeout"


class RateLimited(TransientSyncError):
    error_type = "rate_limited"
    label = "Rate limited"

    def __init__(self, message: str, retry_after: float | None = None, reserved: bool = False) -> None:
        super().__init__(message, retry_after)
        self.reserved = reserved
        """Our own limiter reserved this call's token for ``retry_after`` seconds from now (not a platform's 429)."""


class CircuitOpen(TransientSyncError):
    error_type = "circuit_open"
    label = "Circuit open"


class PermanentSyncError(SyncError):
    pass


class ValidationFailed(PermanentSyncError):
    error_type = "validation_error"
    label = "Validation error"


class NotFound(PermanentSyncError):
    error_type = "not_found"
    label = "Not found"


class PlatformAuthError(PermanentSyncError):
    error_type = "authentication_error"
    label = "Platform authentication failed"


class TenantMismatch(PermanentSyncError):
    """A connection of one agency pointing at another agency's property: syncing it would
    import bookings into, and push prices out of, a property the connection's owner does not own."""

    error_type = "tenant_mismatch"
    label = "Tenant mismatch"


class TimeLimitExceeded(PermanentSyncError):
    error_type = "time_limit"
    label = "Time limit exceeded"
