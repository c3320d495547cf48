"""Reading sync logs as the runbook does: summary, retry details, stale open logs, polling."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

from pmsops import results
from pmsops.results import Result

from pmsops.sync import FINAL_STATUSES as FINAL
from pmsops.sync import OPEN_STATUSES as OPEN


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
        return [results.warn("sync-logs", "no sync logs for this connection", hint="no sync has run yet: trigger one (pmsops sync trigger ID --type full)")]
    last = logs[0]
    notes = [f"last operation: {last.get('operation_type')}", f"last status: {last.get('status')}", f"last created_at: {last.get('created_at')}"]
    for log in logs:
        details = log.get("details") or {}
        if details.get("retry_count"):
            notes.append(f"{log.get('operation_type')} {str(log.get('id'))[:8]}: retry {details.get('retry_count')}"
                         + (f", {details.get('error_type')}" if details.get("error_type") else "")
                         + (f", next in {details.get('next_retry_seconds')} s" if log.get("status") == "running" and details.get("next_retry_seconds") else ""))
    stale = []
    for log in logs:
        updated = parse_time(log.get("updated_at") or log.get("created_at"))
        if log.get("status") in OPEN and updated and (now - updated).total_seconds() > stale_after:
            stale.append(log)
    failed = [log for log in logs if log.get("status") == "failed"]
    out = [results.ok("sync-logs", f"{len(logs)} log(s); last {last.get('operation_type')} {last.get('status')}", notes=notes)]
    if failed:
        out.append(results.warn("failed", f"{len(failed)} failed log(s); latest error: {failed[0].get('error')}",
                                hint="check the worker logs (pmsops host logs pms-worker-v2) and the connection's credentials"))
    if stale:
        ages = ", ".join(f"{s.get('operation_type')} {s.get('status')} for {(now - parse_time(s.get('updated_at') or s.get('created_at'))).total_seconds() / 60:.0f} min" for s in stale)
        out.append(results.warn("stale", f"{len(stale)} log(s) stuck open: {ages}",
                                hint="'triggered' for long: no worker takes tasks (pmsops celery ping); 'running' for long: a hung task or a killed worker (pmsops celery active; pmsops sync reap)"))
    return out


def wait_until_final(fetch: Callable[[], list[dict[str, Any]]], task_ids: list[str], log_ids: list[str], timeout: float, poll: float = 1.0,
                     progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Poll until every log created by the trigger is final; returns (logs, finished)."""
    deadline = time.monotonic() + timeout
    while True:
        logs = fetch()
        mine = [log for log in logs if str(log.get("id")) in log_ids or log.get("task_id") in task_ids]
        if progress:
            progress(", ".join(f"{m.get('operation_type')}: {m.get('status')}" for m in mine) or "no log yet")
        expected = max(len(log_ids), len(task_ids)) or 1
        if len(mine) >= expected and all(m.get("status") in FINAL for m in mine):
            return mine, True
        if time.monotonic() >= deadline:
            return mine, False
        time.sleep(min(poll, max(0.05, deadline - time.monotonic())))


def final_verdict(name: str, found: list[dict[str, Any]], finished: bool, timeout: float) -> Result:
    """Success only if every log the trigger created ended ``success``; hints name why not."""
    notes = [f"{m.get('operation_type')}: {m.get('status')}" + (f" ({m.get('error')})" if m.get("error") else "") for m in found]
    if not finished:
        stuck = {m.get("status") for m in found} or {"missing"}
        hint = ("logs stay 'triggered': no worker picks up tasks — is pms-worker running and on the broker? (pmsops celery ping; pmsops host logs pms-worker-v2)"
                if stuck <= {"triggered", "queued", "missing"} else "logs stay 'running': a task hangs or its worker died (pmsops celery active; pmsops sync reap)")
        return results.fail(name, f"not final after {timeout:g} s ({', '.join(sorted(str(s) for s in stuck))})", notes=notes, hint=hint)
    if any(m.get("status") != "success" for m in found):
        return results.fail(name, "sync failed", notes=notes, hint="read each log's error; worker logs: pmsops host logs pms-worker-v2")
    return results.ok(name, f"all {len(found)} operation(s) succeeded", notes=notes)
