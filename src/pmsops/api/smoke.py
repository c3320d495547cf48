"""``smoke``: the runbook's Quick Smoke as one command.

1 load environment → 2 token → 3 /health/ready → 4 channel connection →
5 trigger sync → 6 sync logs until the triggered operations are final. Each step
is a Result with its duration and the runbook's hint; after a failure the later
steps are ``skip``. Exit 0 only if the sync succeeded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from xml.sax.saxutils import escape, quoteattr

from pmsops import results
from pmsops.errors import PmsopsError
from pmsops.redaction import redact
from pmsops.results import Result, Stopwatch
from pmsops.settings import Settings

STEPS = ("1 load environment", "2 token", "3 health", "4 channel connection", "5 trigger sync", "6 sync logs")


@dataclass
class SmokeRun:
    results: list[Result] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


class _StepFailed(Exception):
    def __init__(self, result: Result) -> None:
        self.result = result


def _step(run: SmokeRun, name: str, fn: Callable[[], Result]) -> None:
    watch = Stopwatch()
    try:
        result = fn()
    except PmsopsError as exc:
        result = results.fail(name, redact(exc.message), hint=exc.hint)
    except Exception as exc:  # noqa: BLE001 - a smoke step fails, it never crashes
        result = results.fail(name, redact(f"{type(exc).__name__}: {exc}"))
    result.name = name
    result.duration_ms = watch.ms
    run.results.append(result)
    if result.status == "fail":
        raise _StepFailed(result)


def run_smoke(settings: Settings, connection: str | None = None, sync_type: str = "full", timeout: float = 60.0,
              http_timeout: float = 10.0, poll: float = 1.0, progress: Callable[[str], None] | None = None, env_file: str | None = None) -> SmokeRun:
    from pmsops.api.client import ApiClient
    from pmsops.api.synclogs import final_verdict, wait_until_final
    from pmsops.api.token import describe, obtain
    from pmsops.checks.health import check_health

    run = SmokeRun()
    state: dict[str, Any] = {}

    def load_env() -> Result:
        api = settings.require("PMS_API_URL", hint="set PMS_API_URL (or API, API_BASE_URL, BACKEND_URL) in /root/pms_env.sh")
        state["api"] = api
        notes = [f"API: {api}"]
        if settings.get("SB_URL"):
            notes.append(f"SB_URL: {settings.get('SB_URL')[:30]}...")
        if settings.get("EMAIL"):
            notes.append(f"EMAIL: {settings.get('EMAIL')}")
        source = f" from {env_file}" if env_file else " from the environment"
        return results.ok("env", f"loaded{source}", notes=notes)

    def token() -> Result:
        info = obtain(settings, http_timeout)
        state["token"] = info.token
        shown = describe(info)[0]
        shown.summary = f"TOKEN {shown.summary}"
        return shown

    def health() -> Result:
        return check_health(state["api"], http_timeout)

    def pick_connection() -> Result:
        with ApiClient(state["api"], state["token"], http_timeout, settings.get("AGENCY_ID")) as client:
            cid = connection or settings.get("CID")
            if cid:
                try:
                    uuid.UUID(cid)
                except ValueError:
                    return results.fail("connection", f"CID={cid!r} is not a UUID", hint="422 would follow: use an id from pmsops connections list")
                found = client.get_connection(cid)
                state["cid"] = cid
                return results.ok("connection", f"CID={cid} ({found.get('platform_type')}, {found.get('status')})")
            items, response = client.list_connections()
            if not items:
                return results.fail("connection", "no channel connections", hint="create one via POST /api/v1/channel-connections/ (or /docs)")
            state["cid"] = str(items[0]["id"])
            via = " (after a 307 to the trailing-slash path)" if response.redirected_from else ""
            return results.ok("connection", f"CID={state['cid']} ({items[0].get('platform_type')}, {items[0].get('status')}){via}", notes=[f"{len(items)} connection(s)"])

    def trigger() -> Result:
        with ApiClient(state["api"], state["token"], http_timeout, settings.get("AGENCY_ID")) as client:
            body = client.trigger_sync(state["cid"], sync_type)
        state["task_ids"] = list(body.get("task_ids") or [])
        state["log_ids"] = [str(i) for i in body.get("created_log_ids") or []]
        run.context.update({"connection_id": state["cid"], "task_ids": state["task_ids"], "batch_id": body.get("batch_id")})
        if not state["task_ids"]:
            return results.fail("trigger", f"HTTP 200 but no task ids (status {body.get('status')})", hint="the backend did not enqueue anything: check CHANNEL_MANAGER_ENABLED and the Celery broker")
        notes = [f"task {t}" for t in state["task_ids"]] + ([f"batch {body['batch_id']}"] if body.get("batch_id") else [])
        return results.ok("trigger", f"{sync_type} sync {body.get('status', 'triggered')}: {len(state['task_ids'])} task(s)", notes=notes)

    def logs() -> Result:
        with ApiClient(state["api"], state["token"], http_timeout, settings.get("AGENCY_ID")) as client:
            found, finished = wait_until_final(lambda: client.sync_logs(state["cid"], limit=50)["logs"], state["task_ids"], state["log_ids"], timeout, poll, progress)
        run.context["logs"] = [{k: m.get(k) for k in ("id", "operation_type", "status", "error", "task_id")} for m in found]
        return final_verdict("sync-logs", found, finished, timeout)

    steps = [load_env, token, health, pick_connection, trigger, logs]
    try:
        for name, fn in zip(STEPS, steps):
            _step(run, name, fn)
    except _StepFailed:
        for name in STEPS[len(run.results):]:
            run.results.append(results.skip(name, "skipped after an earlier failure"))
    return run


def junit_xml(run: SmokeRun) -> str:
    """One testcase per step, for CI."""
    failures = sum(r.status == "fail" for r in run.results)
    skipped = sum(r.status == "skip" for r in run.results)
    total = sum((r.duration_ms or 0) for r in run.results) / 1000
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name="pmsops smoke" tests="{len(run.results)}" failures="{failures}" errors="0" skipped="{skipped}" time="{total:.3f}">']
    for r in run.results:
        lines.append(f'  <testcase classname="pmsops.smoke" name={quoteattr(redact(r.name))} time="{(r.duration_ms or 0) / 1000:.3f}">')
        text = escape(redact("\n".join([r.summary, *r.notes, *( [f"hint: {r.hint}"] if r.hint else [])])))
        if r.status == "fail":
            lines.append(f"    <failure message={quoteattr(redact(r.summary))}>{text}</failure>")
        elif r.status == "skip":
            lines.append(f"    <skipped message={quoteattr(redact(r.summary))}/>")
        else:
            lines.append(f"    <system-out>{text}</system-out>")
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"
