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
    label: str | None = None
    """What people read (``1 load environment``); ``name`` stays the stable key for JSON and scripts."""

    @property
    def ok(self) -> bool:
        return self.status in (Status.OK, Status.WARN, Status.SKIP)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        if self.duration_ms is not None:
            data["duration_ms"] = round(self.duration_ms, 1)
        if self.label is None:
            del data["label"]
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
    """The one exit-code rule (README "Exit codes").

    0: everything checked is ok (warnings and skips allowed). 1: something failed, or
    with ``strict`` something warned. 2: nothing was checked at all (every result a
    skip, or no result) - an empty run is not a success.
    """
    items = list(results)
    status = worst(items)
    if status is Status.FAIL or (strict and status is Status.WARN):
        return exitcodes.FAILED
    if status is Status.SKIP:
        return exitcodes.USAGE
    return exitcodes.OK


def counts(results: Iterable[Result]) -> dict[str, int]:
    """How many results have each status (all four keys, for JSON)."""
    found = {status.value: 0 for status in Status}
    for result in results:
        found[Status(result.status).value] += 1
    return found


def summary_line(results: Iterable[Result], seconds: float, interrupted: bool = False, pending: Iterable[str] = ()) -> str:
    """``3 ok, 1 warning, 1 failed in 3.2 s: db, celery`` - the last line of a multi-check command."""
    items = list(results)
    number = counts(items)
    words = [
        (number["ok"], "ok", "ok"),
        (number["warn"], "warning", "warnings"),
        (number["fail"], "failed", "failed"),
        (number["skip"], "skipped", "skipped"),
    ]
    text = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in words if n) or "nothing checked"
    text += f" in {seconds_text(seconds)}"
    named = [r.name for r in items if r.status is Status.FAIL] + [r.name for r in items if r.status is Status.WARN]
    if named:
        text += ": " + ", ".join(named)
    elif items and number["skip"] == len(items) and not interrupted:
        text = (
            f"nothing checked ({len(items)} skipped) in {seconds_text(seconds)}: "
            "set the variables named above, or pass --env-file FILE or --context NAME"
        )
    waiting = list(pending)
    if interrupted:
        text = "interrupted: " + text + (f"; not finished: {', '.join(waiting)}" if waiting else "")
    return text


def seconds_text(seconds: float) -> str:
    """Rounded for people: ``850 ms``, ``2.6 s``, ``41 s``, ``3 m 5 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} m {rest} s" if rest else f"{minutes} m"


class Collector:
    """Results of a multi-check run, released in a fixed order as soon as they are known.

    Checks may finish in any order; ``finish(slot, results)`` stores them and hands
    every result whose slot and all slots before it are done to ``on_result``, so a
    reader sees each line the moment it can be printed without the order changing
    between runs. ``progress(slot, key, text)`` reports what a running slot is doing
    (one line per ``key``, replaced in place by the renderer). Used from one thread.
    """

    def __init__(
        self, slots: Iterable[str], on_result: Callable[[Result], None] | None = None, on_progress: Callable[[str, str, str], None] | None = None
    ) -> None:
        self.slots = list(slots)
        self.results: list[Result] = []
        self.on_result = on_result
        self.on_progress = on_progress
        self._done: dict[str, list[Result]] = {}
        self._released = 0
        self.started = time.monotonic()
        self.started_at: dict[str, float] = {}

    def start(self, slot: str) -> None:
        """``slot`` is running now (the renderer shows a spinner and its elapsed time)."""
        self.started_at[slot] = time.monotonic()

    def finish(self, slot: str, found: Result | list[Result]) -> None:
        self._done[slot] = found if isinstance(found, list) else [found]
        while self._released < len(self.slots) and self.slots[self._released] in self._done:
            released = self._done[self.slots[self._released]]
            self.results.extend(released)
            self._released += 1  # the record first, the screen second: a Ctrl-C while printing loses nothing
            for result in released:
                if self.on_result is not None:
                    self.on_result(result)

    def progress(self, slot: str, key: str, text: str) -> None:
        if self.on_progress is not None:
            self.on_progress(slot, key, text)

    @property
    def pending(self) -> list[str]:
        """Slots not released yet (still running, or waiting for an earlier one)."""
        return self.slots[self._released :]

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


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
