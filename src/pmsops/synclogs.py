"""Reading sync logs as the runbook does: summary, retry details, stale open logs, the one poller and verdict.

Below both ways of reading them (the API's ``…/sync-logs`` and the database): :mod:`pmsops.api` and
:mod:`pmsops.sync` use it, and it imports neither."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

from pmsops import results
from pmsops.errors import RateLimitExceeded
from pmsops.results import Result

FINAL_STATUSES = ("success", "failed", "cancelled")
OPEN_STATUSES = ("triggered", "queued", "running")
"""The statuses of ``channel_sync_logs`` (the contract's): final ones never change again."""
FINAL, OPEN = FINAL_STATUSES, OPEN_STATUSES


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def summarise(logs: list[dict[str, Any]], stale_after: float = 600.0, now: datetime | None = None) -> list[Result]:
    """The runbook's summary (total, last operation/status/created_at), retries, stale open logs."""
    now = now or datetime.now(timezone.utc)
    if not logs:
        return [
            results.warn(
                "sync-logs", "no sync logs for this connection", hint="no sync has run yet: trigger one (pmsops sync trigger ID --type full)"
            )
        ]
    last = logs[0]
    notes = [f"last operation: {last.get('operation_type')}", f"last status: {last.get('status')}", f"last created_at: {last.get('created_at')}"]
    for log in logs:
        details = log.get("details") or {}
        if details.get("retry_count"):
            notes.append(
                f"{log.get('operation_type')} {str(log.get('id'))[:8]}: retry {details.get('retry_count')}"
                + (f", {details.get('error_type')}" if details.get("error_type") else "")
                + (f", next in {details.get('next_retry_seconds')} s" if log.get("status") == "running" and details.get("next_retry_seconds") else "")
            )
    stale = []
    for log in logs:
        updated = parse_time(log.get("updated_at") or log.get("created_at"))
        if log.get("status") in OPEN and updated and (now - updated).total_seconds() > stale_after:
            stale.append(log)
    failed = [log for log in logs if log.get("status") == "failed"]
    latest = _latest_per_operation(logs)
    failing_now = [log for log in latest if log.get("status") == "failed"]
    head = f"{len(logs)} log(s); last {last.get('operation_type')} {last.get('status')}"
    out = [results.fail("sync-logs", head, notes=notes) if failing_now or stale else results.ok("sync-logs", head, notes=notes)]
    if failed:
        # The latest run of an operation failed: it is failing now. Only older failures (since succeeded): a warning.
        make = results.fail if failing_now else results.warn
        which = ", ".join(sorted({str(log.get("operation_type")) for log in failing_now}))
        out.append(
            make(
                "failed",
                f"{len(failed)} failed log(s)"
                + (f"; the latest {which} failed" if failing_now else "; all since succeeded")
                + f"; latest error: {failed[0].get('error')}",
                hint="check the worker logs (pmsops host logs pms-worker-v2) and the connection's credentials",
            )
        )
    if stale:
        ages = ", ".join(
            f"{s.get('operation_type')} {s.get('status')} for {relative(now - parse_time(s.get('updated_at') or s.get('created_at')))}" for s in stale
        )
        out.append(
            results.fail(
                "stale",
                f"{len(stale)} log(s) stuck open: {ages}",
                hint="'triggered' for long: no worker takes tasks (pmsops celery ping); "
                "'running' for long: a hung task or a killed worker (pmsops celery active; pmsops sync reap)",
            )
        )
    return out


def logs_report(logs: list[dict[str, Any]], stale_after: float = 600.0, now: datetime | None = None) -> list[Result]:
    """``sync logs``: the table (header, relative times) under the runbook's summary, then the verdicts."""
    found = summarise(logs, stale_after, now)
    found[0].notes = log_table(logs, now) + found[0].notes
    found[0].details = {"logs": logs, "total": len(logs)}
    return found


def _latest_per_operation(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest log of each operation type (logs come newest first)."""
    seen: dict[str, dict[str, Any]] = {}
    for log in logs:
        seen.setdefault(str(log.get("operation_type")), log)
    return list(seen.values())


def relative(delta) -> str:
    """'40 s', '12 min', '3 h', '2 d' (a timedelta, rounded for people)."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


MAX_RETRIES = 3
"""The worker's default SYNC_MAX_RETRIES: shown as ``retry n/3`` for a log written before workers recorded theirs."""

CAUSES = {
    "platform_error": (
        "the platform (channel API) answers with errors",
        "the platform is down or failing: check its status and PLATFORM_BASE_URL; "
        "the breaker opens after repeated errors and retries resume when it closes",
    ),
    "timeout": (
        "the platform (channel API) does not answer in time",
        "the platform is slow or black-holed: check the network path to it and its status",
    ),
    "rate_limited": ("the platform rate-limits us", "retries wait for the platform's rate limit (Retry-After): nothing to fix unless it persists"),
    "circuit_open": (
        "the platform's circuit breaker is open after repeated platform errors",
        "the platform failed repeatedly: check it (pmsops top shows breakers); retries resume when the breaker closes",
    ),
    "database_unavailable": ("the worker cannot reach the database", "check DATABASE_URL in the worker and that the database runs (pmsops check db)"),
    "authentication_error": ("the platform refused the connection's credentials", "update the connection's credentials"),
}
"""error_type (written by the worker into a log's details) → (what it means, what to do)."""


def describe_log(log: dict[str, Any], max_retries: int = MAX_RETRIES, now: datetime | None = None) -> str:
    """One in-place progress line for an operation: status, retry n/3, error type, next retry in N s."""
    details = log.get("details") if isinstance(log.get("details"), dict) else {}
    parts = [f"{log.get('operation_type', '?')}: {log.get('status', '?')}"]
    if details.get("retry_count"):
        parts.append(f"retry {details['retry_count']}/{details.get('max_retries') or max_retries}")  # the worker's own limit, as it wrote it
    if details.get("error_type"):
        parts.append(str(details["error_type"]))
        if details["error_type"] == "circuit_open":
            parts.append("breaker open")
    retry_in = _retry_in(log, now)
    if log.get("status") in OPEN and retry_in is not None:
        parts.append(f"next retry in {retry_in:.0f} s")
    return ", ".join(parts)


def _retry_in(log: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds until the log's announced retry (``updated_at + next_retry_seconds``), or None."""
    details = log.get("details") if isinstance(log.get("details"), dict) else {}
    try:
        countdown = float(details.get("next_retry_seconds"))
    except (TypeError, ValueError):
        return None
    updated = parse_time(log.get("updated_at"))
    if updated is None:
        return countdown
    now = now or datetime.now(timezone.utc)
    return max(0.0, countdown - (now - updated).total_seconds())


def wait_until_final(
    fetch: Callable[[], list[dict[str, Any]]],
    task_ids: list[str],
    log_ids: list[str],
    timeout: float,
    poll: float = 1.0,
    progress: Callable[[list[dict[str, Any]]], None] | None = None,
    give_up: Callable[[list[dict[str, Any]], float], bool] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The one poller (API and database alike): until every log created by the trigger is final.

    Returns (logs, finished). ``progress`` gets the trigger's logs after each poll.
    Stops early, unfinished, when every open log waits for a retry announced for
    after the deadline (waiting longer could not change the verdict), or when
    ``give_up(logs, seconds waited)`` says so (e.g. no worker answers a ping).
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        logs = fetch()
        mine = [log for log in logs if str(log.get("id")) in log_ids or log.get("task_id") in task_ids]
        if progress:
            progress(mine)
        expected = max(len(log_ids), len(task_ids)) or 1
        if len(mine) >= expected and all(m.get("status") in FINAL for m in mine):
            return mine, True
        left = deadline - time.monotonic()
        if left <= 0:
            return mine, False
        open_logs = [m for m in mine if m.get("status") not in FINAL]
        waits = [_retry_in(m) for m in open_logs]
        if len(mine) >= expected and open_logs and all(w is not None and w > left + poll for w in waits):
            return mine, False
        if give_up is not None and give_up(mine, time.monotonic() - started):
            return mine, False
        time.sleep(min(poll, max(0.05, left)))


def final_verdict(name: str, found: list[dict[str, Any]], finished: bool, timeout: float) -> Result:
    """The one verdict on a trigger's logs: success only if every log ended ``success``; the hint names the cause."""
    notes = [describe_log(m) + (f" ({m.get('error')})" if m.get("error") else "") for m in found]
    details = {"logs": [{k: m.get(k) for k in ("id", "task_id", "operation_type", "status", "error", "details")} for m in found]}
    causes = [str(m["details"]["error_type"]) for m in found if isinstance(m.get("details"), dict) and m["details"].get("error_type")]
    named = next((CAUSES[c] for c in causes if c in CAUSES), None)
    if not finished:
        stuck = {str(m.get("status")) for m in found} or {"missing"}
        if named:
            summary = f"not final within the {timeout:g} s wait: {named[0]} ({', '.join(sorted(set(causes)))})"
            return results.fail(name, summary, notes=notes, hint=named[1], details=details)
        hint = (
            "logs stay 'triggered': no worker picks up tasks — is pms-worker running and on the broker? "
            "(pmsops celery ping; pmsops host logs pms-worker-v2)"
            if stuck <= {"triggered", "queued", "missing"}
            else "logs stay 'running': a task hangs or its worker died (pmsops celery active; pmsops sync reap)"
        )
        return results.fail(name, f"not final after {timeout:g} s ({', '.join(sorted(stuck))})", notes=notes, hint=hint, details=details)
    if any(m.get("status") != "success" for m in found):
        summary = "sync failed" + (f": {named[0]} ({', '.join(sorted(set(causes)))})" if named else "")
        return results.fail(
            name,
            summary,
            notes=notes,
            details=details,
            hint=named[1] if named else "read each log's error; worker logs: pmsops host logs pms-worker-v2",
        )
    return results.ok(name, f"all {len(found)} operation(s) succeeded", notes=notes, details=details)


def _error_column(log: dict[str, Any], details: dict[str, Any]) -> str:
    """A final log's error; for an open one waiting to retry, the error it waits on (``details.last_error``: a platform
    outage is visible while the operation is still open, not only once it has failed)."""
    if log.get("error"):
        return str(log["error"])
    if log.get("status") in OPEN and details.get("last_error"):
        return f"waiting: {details['last_error']}"
    return ""


def log_table(logs: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """The sync logs as table rows under a header: when (relative), operation, direction, status, retry, error."""
    now = now or datetime.now(timezone.utc)
    rows = [f"{'WHEN':<10} {'OPERATION':<20} {'DIR':<8} {'STATUS':<9} RETRY  ERROR"] if logs else []
    for log in logs:
        created = parse_time(log.get("created_at"))
        when = f"{relative(now - created)} ago" if created else "?"
        details = log.get("details") if isinstance(log.get("details"), dict) else {}
        retry = details.get("retry_count", 0)
        rows.append(
            f"{when:<10} {str(log.get('operation_type', '?')):<20} {str(log.get('direction', '?')):<8} {str(log.get('status', '?')):<9} "
            f"{retry!s:<6} {_error_column(log, details)}".rstrip()
        )
    return rows


def rate_limited_verdict(name: str, exc, seen: list[dict[str, Any]], task_ids: list[str]) -> Result:
    """The API answered 429 with a Retry-After longer than the wait left: the 429 named with its seconds, and
    everything learned so far (the task ids, the logs as last seen) kept in the result."""
    return results.fail(
        name,
        f"stopped following the logs: {exc.message}",
        hint=exc.hint,
        notes=[describe_log(m) for m in seen] + [f"task {t}" for t in task_ids],
        details={
            "retry_after": exc.retry_after,
            "task_ids": task_ids,
            "logs": [{k: m.get(k) for k in ("id", "task_id", "operation_type", "status", "error", "details")} for m in seen],
        },
    )


def follow_trigger(client, connection_id: str, sync_type: str, wait: float | None, collector, no_worker=None) -> list[Result]:
    """``sync trigger``: POST the trigger, then (``wait`` seconds at most) follow its logs with the one poller.

    ``no_worker`` (a :class:`pmsops.procedures.no_worker.NoWorkerProbe`) ends the wait early when logs stay
    'triggered' and no worker answers on the broker: the verdict smoke reaches, in seconds whatever ``--wait`` is."""
    collector.start("trigger")
    body = client.trigger_sync(connection_id, sync_type)
    task_ids, log_ids = list(body.get("task_ids") or []), [str(i) for i in body.get("created_log_ids") or []]
    notes = [f"task {t}" for t in task_ids] + ([f"batch {body['batch_id']}"] if body.get("batch_id") else [])
    collector.finish(
        "trigger",
        results.ok(
            "trigger",
            f"{sync_type} sync {body.get('status', 'triggered')}: {len(task_ids)} task(s)",
            notes=notes,
            details={k: body.get(k) for k in ("task_ids", "batch_id", "created_log_ids", "status")},
        ),
    )
    if wait:
        collector.start("sync-logs")

        def show(logs: list[dict[str, Any]]) -> None:
            for log in logs:
                collector.progress("sync-logs", str(log.get("id") or log.get("task_id")), describe_log(log))

        fetch = lambda: client.sync_logs(connection_id, limit=50)["logs"]  # noqa: E731
        collector.finish("sync-logs", follow_verdict(fetch, task_ids, log_ids, wait, 1.0, show, no_worker)[0])
    return collector.results


def follow_verdict(fetch, task_ids: list[str], log_ids: list[str], wait: float, poll: float, show, no_worker=None):
    """(verdict, logs as last seen) of following a trigger's logs: ``sync trigger --wait`` and smoke's step 6 alike.

    The one poller, then the first that applies: the no-worker probe's verdict, a 429 longer than the wait (named,
    with the task ids and the logs seen so far), the final verdict."""
    seen: list[dict[str, Any]] = []

    def watch(logs: list[dict[str, Any]]) -> None:
        seen[:] = logs
        show(logs)

    try:
        found, finished = wait_until_final(fetch, task_ids, log_ids, wait, poll, watch, no_worker)
    except RateLimitExceeded as exc:
        return rate_limited_verdict("sync-logs", exc, seen, task_ids), seen
    early = no_worker.verdict("sync-logs", found) if no_worker is not None else None
    return early or final_verdict("sync-logs", found, finished, wait), found


def _cell(value: Any) -> str:
    """A table cell of an API field: a missing or null field is "?", never Python's "None"."""
    return "?" if value is None or value == "" else str(value)


def connections_result(items: list[dict[str, Any]], redirect_note: str | None = None, now: datetime | None = None) -> Result:
    """``connections list``: a table (header, relative last sync) or a warning when there is none."""
    if not items:
        return results.warn("connections", "no channel connections", hint="create one via POST /api/v1/channel-connections/")
    now = now or datetime.now(timezone.utc)
    rows = [f"{'ID':<36}  {'PLATFORM':<12} {'STATUS':<9} LAST SYNC"]
    for c in items:
        last = parse_time(c.get("last_sync_at"))
        rows.append(
            f"{_cell(c.get('id')):<36}  {_cell(c.get('platform_type')):<12} {_cell(c.get('status')):<9} "
            + (f"{relative(now - last)} ago" if last else "never")
        )
    if redirect_note:
        rows.append(redirect_note)
    return results.ok("connections", f"{len(items)} connection(s)", notes=rows, details={"connections": items})
