"""Plain data that every check and operation returns; renderers decide nothing.

A :class:`Result` is ``name, status, summary, hint, notes, details, duration_ms``.
Checks never print. :func:`run_check` times a callable and turns an unexpected
exception into a ``fail`` result whose text is redacted, so one broken check
cannot crash ``doctor`` or leak a URL.
"""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from pmsops import exitcodes
from pmsops.redaction import redact


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


@dataclass
class Result:
    name: str
    status: Status
    summary: str
    hint: str | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.OK, Status.WARN, Status.SKIP)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        if self.duration_ms is not None:
            data["duration_ms"] = round(self.duration_ms, 1)
        return data


def ok(name: str, summary: str, **kw: Any) -> Result:
    return Result(name, Status.OK, summary, **kw)


def warn(name: str, summary: str, **kw: Any) -> Result:
    return Result(name, Status.WARN, summary, **kw)


def fail(name: str, summary: str, **kw: Any) -> Result:
    return Result(name, Status.FAIL, summary, **kw)


def skip(name: str, summary: str, **kw: Any) -> Result:
    return Result(name, Status.SKIP, summary, **kw)


def worst(results: Iterable[Result]) -> Status:
    order = [Status.FAIL, Status.WARN, Status.OK, Status.SKIP]
    seen = {r.status for r in results}
    for status in order:
        if status in seen:
            return status
    return Status.SKIP


def exit_code(results: Iterable[Result], strict: bool = False) -> int:
    """0 all good, 1 any failure (or any warning with ``strict``)."""
    status = worst(list(results))
    if status is Status.FAIL or (strict and status is Status.WARN):
        return exitcodes.FAILED
    return exitcodes.OK


def run_check(name: str, fn: Callable[[], Result | list[Result]]) -> list[Result]:
    """Run ``fn``, time it, and never let an exception escape as a traceback."""
    from pmsops.errors import PmsopsError

    started = time.perf_counter()
    try:
        produced = fn()
        results = produced if isinstance(produced, list) else [produced]
    except PmsopsError as exc:
        results = [fail(name, redact(exc.message), hint=exc.hint)]
    except Exception as exc:  # noqa: BLE001 - a check must fail, not crash the run
        results = [fail(name, redact(f"{type(exc).__name__}: {exc}"))]
    elapsed = (time.perf_counter() - started) * 1000
    for result in results:
        if result.duration_ms is None:
            result.duration_ms = elapsed
    return results


class Stopwatch:
    """Monotonic elapsed time in milliseconds, for checks that time themselves."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
