"""The one exception tree of pmsops.

::

    PmsopsError                 one clean line for the operator, never a traceback
    ├── UsageError              bad input: exit 2 (invalid URL, missing variable, unreadable file)
    └── OperationError          something we tried failed: exit 1
        └── DependencyError     a dependency (Redis, PostgreSQL, HTTP, docker) failed

Lower-level errors are mapped to the most specific one and raised ``from`` the
original, so ``--debug`` still shows where they came from. Messages pass through
:mod:`pmsops.redaction` before they are shown.
"""

from __future__ import annotations

from pmsops import exitcodes


class PmsopsError(Exception):
    """Base class: carries an exit code and an optional runbook hint."""

    exit_code = exitcodes.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(PmsopsError):
    """The operator gave something we cannot use; nothing was attempted."""

    exit_code = exitcodes.USAGE


class OperationError(PmsopsError):
    """An operation was attempted and failed."""


class DependencyError(OperationError):
    """A dependency answered badly or not at all."""


class RateLimitExceeded(DependencyError):
    """A server's rate limit asks for a wait (``retry_after`` seconds, or ``None``) longer than the command may still
    wait. A poller catches it to end with what it learned so far (:class:`pmsops.api.errors.RateLimited`)."""

    retry_after: float | None = None
