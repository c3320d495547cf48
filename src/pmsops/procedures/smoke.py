"""``smoke``: the runbook's Quick Smoke as one command.

1 load environment → 2 token → 3 /health/ready → 4 channel connection →
5 trigger sync → 6 sync logs until the triggered operations are final. Each step
is a Result with its duration and the runbook's hint; after a failure the later
steps are ``skip``. Exit 0 only if the sync succeeded.

:func:`junit_xml` is the CI report. What CI viewers do with it decided its shape:
GitLab drops a whole report that is not well-formed XML, so every text passes
:func:`pmsops.render.xml_text`; GitLab shows output only for failed and skipped
cases and Jenkins hides ``<system-out>`` of passes, so a warning step is written as
``<skipped message="warning: …">`` (or ``<failure type="warning">`` with
``--strict``); two smoke runs in one job (staging, prod) must not collide, so the
suite name and ``classname`` carry the context (``--suite-name``, else
``PMSOPS_CONTEXT``, else the API host); ``<testsuite>`` carries ``timestamp``
(UTC, the xunit schema's form without a zone) and ``hostname``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pmsops import results
from pmsops.redaction import redact
from pmsops.render import xml_text
from pmsops.results import Collector, Result, Status, run_check, worst
from pmsops.ids import parse_uuid
from pmsops.settings import Settings

STEPS = (
    ("env", "1 load environment"),
    ("token", "2 token"),
    ("health", "3 health"),
    ("connection", "4 channel connection"),
    ("trigger", "5 trigger sync"),
    ("sync-logs", "6 sync logs"),
)
"""(stable name, label): the name is the JSON/JUnit key, the label what people read."""
SLOTS = tuple(name for name, _ in STEPS)
LABELS = dict(STEPS)
VARIABLES = {
    "PMS_API_URL": "the API (required)",
    "TOKEN": "a JWT to use (else the password grant with the next four)",
    "SB_URL": "Supabase Auth (GoTrue)",
    "ANON_KEY": "its anon key",
    "EMAIL": "the user",
    "PASSWORD": "the user's password",
    "CID": "the connection to sync (else the first listed)",
    "AGENCY_ID": "the tenant (x-agency-id), when the user has several",
    "CELERY_BROKER_URL": "to ask whether a worker listens when the logs do not move",
    "PMSOPS_CONTEXT": "the context in the JUnit suite's name",
}
"""What smoke reads, in the order its steps need it (pmsops help smoke lists them with their aliases)."""


def variables_help() -> str:
    """``pmsops help smoke``'s list of what it reads: each variable with the aliases settings accepts."""
    from pmsops.settings import ALIASES

    def named(name: str) -> str:
        others = [alias for alias in ALIASES.get(name, (name,)) if alias != name]
        return name + (f" (or {', '.join(others)})" if others else "")

    return "Reads (environment or --env-file): " + "; ".join(f"{named(name)}: {what}" for name, what in VARIABLES.items()) + "."


NEEDS = {"env": (), "token": ("env",), "health": ("env",), "connection": ("token",), "trigger": ("connection",), "sync-logs": ("trigger",)}
"""What each step needs to have succeeded: health needs no token, so a failed token still shows health."""


@dataclass
class SmokeRun:
    results: list[Result] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    elapsed_ms: float | None = None
    """Wall time of the whole run (not the sum of the steps)."""
    unfinished: list[str] = field(default_factory=list)
    """Checks an interruption (Ctrl-C) left unfinished: each an ``<error>`` in the JUnit report, never a silent pass."""


def suite_context(settings: Settings, explicit: str | None = None) -> str:
    """What tells this smoke run apart in CI: --suite-name, else PMSOPS_CONTEXT, else the API's host."""
    if explicit and explicit.strip():
        return explicit.strip()
    if settings.get("PMSOPS_CONTEXT"):
        return settings.get("PMSOPS_CONTEXT").strip()
    api = settings.get("PMS_API_URL")
    if api:
        from urllib.parse import urlsplit

        try:
            host = urlsplit(api).hostname
        except ValueError:
            host = None
        if host:
            return host
    return "default"


def _classname(context: str, command: str = "smoke") -> str:
    """``pmsops.smoke.<context>``; dots and other punctuation become ``_`` (viewers split classnames at dots)."""
    return f"pmsops.{re.sub(r'[^A-Za-z0-9_-]+', '_', command)}." + (re.sub(r"[^A-Za-z0-9_-]+", "_", context).strip("_") or "default")


def worker_missing(health: Result) -> str | None:
    """What health said about the worker when it said celery is down (None: not known to be down). Redis down comes
    first: with the broker unreachable no worker can answer or take a task, whatever the workers do."""
    components = (health.details.get("components") or {}) if isinstance(health.details, dict) else {}
    from pmsops.checks.health import UP

    def down(name: str) -> dict | None:
        component = components.get(name)
        if not component or component.get("skipped") or str(component.get("status", "")).lower() in UP:
            return None
        return component

    redis, celery = down("redis"), down("celery")
    if redis is not None:
        return "redis " + str(redis.get("status")) + (f" ({redis['error']})" if redis.get("error") else "") + ": the broker is unreachable"
    if celery is None:
        return None
    return "celery " + str(celery.get("status")) + (f" ({celery['error']})" if celery.get("error") else "") + ", no worker answers"


@dataclass
class SmokeInputs:
    """What a smoke run is asked to do (the command's options)."""

    settings: Settings
    connection: str | None = None
    sync_type: str = "full"
    wait: float = 60.0
    http_timeout: float = 10.0
    poll: float = 1.0
    env_file: str | None = None


@dataclass
class SmokeFacts:
    """What the steps learned, each written by one step and read by the later ones."""

    api: str | None = None
    token: str | None = None
    worker_missing: str | None = None
    cid: str | None = None
    task_ids: list[str] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)


class SmokeSteps:
    """The six steps, each a method from :class:`SmokeInputs` and earlier :class:`SmokeFacts` to one Result."""

    def __init__(self, inputs: SmokeInputs, run: SmokeRun, collector: Collector) -> None:
        self.inputs, self.run, self.collector, self.facts = inputs, run, collector, SmokeFacts()

    def _client(self):
        from pmsops.api.client import ApiClient

        i = self.inputs
        return ApiClient(self.facts.api, self.facts.token, i.http_timeout, i.settings.get("AGENCY_ID"), budget=i.wait)

    def env(self) -> Result:
        settings = self.inputs.settings
        self.facts.api = settings.require("PMS_API_URL", hint="set PMS_API_URL (or API, API_BASE_URL, BACKEND_URL) in /root/pms_env.sh")
        notes = [f"API: {self.facts.api}"]
        if settings.get("SB_URL"):
            notes.append(f"SB_URL: {settings.get('SB_URL')[:30]}...")
        if settings.get("EMAIL"):
            notes.append(f"EMAIL: {settings.get('EMAIL')}")
        source = f" from {self.inputs.env_file}" if self.inputs.env_file else " from the environment"
        return results.ok("env", f"loaded{source}", notes=notes)

    def token(self) -> Result:
        from pmsops.api.token import describe, obtain

        info = obtain(self.inputs.settings, self.inputs.http_timeout)
        self.facts.token = info.token
        shown = describe(info)[0]
        shown.summary = f"TOKEN {shown.summary}"
        return shown

    def health(self) -> Result:
        from pmsops.checks.health import check_health

        found = check_health(self.facts.api or "", self.inputs.http_timeout)
        self.facts.worker_missing = worker_missing(found)
        return found

    def connection(self) -> Result:
        with self._client() as client:
            cid = self.inputs.connection or self.inputs.settings.get("CID")
            if cid:
                if parse_uuid(cid) is None:
                    return results.fail("connection", f"CID={cid!r} is not a UUID", hint="422 would follow: use an id from pmsops connections list")
                found = client.get_connection(cid)
                self.facts.cid = cid
                return results.ok("connection", f"CID={cid} ({found.get('platform_type')}, {found.get('status')})")
            items, response = client.list_connections()
        if not items:
            return results.fail("connection", "no channel connections", hint="create one via POST /api/v1/channel-connections/ (or /docs)")
        self.facts.cid = str(items[0]["id"])
        return results.ok(
            "connection",
            f"CID={self.facts.cid} ({items[0].get('platform_type')}, {items[0].get('status')})",
            notes=[f"{len(items)} connection(s)"] + [note for note in [response.redirect_note()] if note],
        )

    def trigger(self) -> Result:
        with self._client() as client:
            body = client.trigger_sync(self.facts.cid, self.inputs.sync_type)
        self.facts.task_ids = list(body.get("task_ids") or [])
        self.facts.log_ids = [str(i) for i in body.get("created_log_ids") or []]
        self.run.context.update({"connection_id": self.facts.cid, "task_ids": self.facts.task_ids, "batch_id": body.get("batch_id")})
        if not self.facts.task_ids:
            return results.fail(
                "trigger",
                f"HTTP 200 but no task ids (status {body.get('status')})",
                hint="the backend did not enqueue anything: check CHANNEL_MANAGER_ENABLED and the Celery broker",
            )
        notes = [f"task {t}" for t in self.facts.task_ids] + ([f"batch {body['batch_id']}"] if body.get("batch_id") else [])
        summary = f"{self.inputs.sync_type} sync {body.get('status', 'triggered')}: {len(self.facts.task_ids)} task(s)"
        return results.ok("trigger", summary, notes=notes)

    def _show(self, logs: list[dict[str, Any]]) -> None:
        from pmsops.synclogs import describe_log

        if not logs:
            self.collector.progress("sync-logs", "-", "no log yet")
        for log in logs:
            self.collector.progress("sync-logs", str(log.get("id") or log.get("task_id")), describe_log(log))

    def sync_logs(self) -> Result:
        from pmsops.procedures.no_worker import NoWorkerProbe
        from pmsops.synclogs import follow_verdict

        i, facts = self.inputs, self.facts
        probe = NoWorkerProbe(i.settings.get("CELERY_BROKER_URL"), i.http_timeout)
        with self._client() as client:
            fetch = lambda: client.sync_logs(facts.cid, limit=50)["logs"]  # noqa: E731
            verdict, found = follow_verdict(fetch, facts.task_ids, facts.log_ids, i.wait, i.poll, self._show, probe)
        self.run.context["logs"] = [{k: m.get(k) for k in ("id", "operation_type", "status", "error", "task_id")} for m in found]
        return verdict

    def step(self, name: str):
        return {
            "env": self.env,
            "token": self.token,
            "health": self.health,
            "connection": self.connection,
            "trigger": self.trigger,
            "sync-logs": self.sync_logs,
        }[name]


def run_smoke(
    settings: Settings,
    connection: str | None = None,
    sync_type: str = "full",
    wait: float = 60.0,
    http_timeout: float = 10.0,
    poll: float = 1.0,
    env_file: str | None = None,
    trigger: bool = True,
    collector: Collector | None = None,
) -> SmokeRun:
    """The Quick Smoke. Each step is released to ``collector`` the moment it ends.

    A step runs when the steps it needs succeeded (:data:`NEEDS`); with the worker
    reported down at step 3 nothing is triggered (its logs would stay 'triggered'
    until the wait ran out), so the verdict names the worker within seconds.
    ``trigger=False`` runs the read-only steps 1-4.
    """
    collector = collector or Collector(SLOTS)
    run = SmokeRun(results=collector.results)
    clock = time.monotonic()
    steps = SmokeSteps(SmokeInputs(settings, connection, sync_type, wait, http_timeout, poll, env_file), run, collector)
    status: dict[str, Status] = {}
    for name, label in STEPS:
        reason = _why_not(name, status, steps.facts, trigger)
        if reason is not None:
            found = [results.skip(name, reason)]
        else:
            collector.start(name)
            found = run_check(name, steps.step(name))
        for result in found:
            result.name, result.label = name, label
        status[name] = worst(found)
        collector.finish(name, found)
    run.elapsed_ms = (time.monotonic() - clock) * 1000
    return run


def _why_not(name: str, status: dict[str, Status], facts: SmokeFacts, trigger: bool) -> str | None:
    """Why step ``name`` does not run (None: it runs)."""
    for need in NEEDS[name]:
        if status.get(need) is not Status.OK and status.get(need) is not Status.WARN:
            return f"skipped: needs step {LABELS[need]}, which " + ("failed" if status.get(need) is Status.FAIL else "did not run")
    if name == "trigger" and not trigger:
        return "not triggered (--no-trigger: read-only steps only)"
    if name == "trigger" and facts.worker_missing:
        missing = facts.worker_missing
        fix = "bring Redis back (pmsops check redis), then re-run" if missing.startswith("redis ") else "start the worker, then re-run"
        return f"not triggered: step 3 says {missing}; its logs would stay 'triggered' ({fix})"
    return None


def junit_xml(run: SmokeRun, context: str = "default", strict: bool = False, hostname: str | None = None, command: str = "smoke") -> str:
    """One testcase per step (per result for other commands), for CI: well-formed whatever the texts contain; warnings visible."""
    import socket

    def attr(text: str) -> str:
        return quoteattr(xml_text(redact(text)))

    def body(r: Result) -> str:
        return escape(xml_text(redact("\n".join([r.summary, *r.notes, *([f"hint: {r.hint}"] if r.hint else [])]))))

    warnings = [r for r in run.results if r.status == Status.WARN]
    failures = sum(r.status == Status.FAIL for r in run.results) + (len(warnings) if strict else 0)
    skipped = sum(r.status == Status.SKIP for r in run.results) + (0 if strict else len(warnings))
    total = (run.elapsed_ms if run.elapsed_ms is not None else sum(r.duration_ms or 0 for r in run.results)) / 1000
    stamp = run.started_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    host = hostname or socket.gethostname() or "localhost"
    classname = _classname(context, command)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuite name={attr(f"pmsops {command} ({context})")} tests="{len(run.results) + len(run.unfinished)}" failures="{failures}" '
        f'errors="{len(run.unfinished)}" skipped="{skipped}" '
        f'time="{total:.3f}" timestamp="{stamp}" hostname={attr(host)}>',
    ]
    for r in run.results:
        lines.append(
            f'  <testcase classname={attr(classname)} name={attr(r.label or r.name)} time="{(r.duration_ms or 0) / 1000:.3f}">'
        )  # CI views show what people read
        if r.status == Status.FAIL:
            lines.append(f"    <failure message={attr(r.summary)}>{body(r)}</failure>")
        elif r.status == Status.WARN and strict:
            lines.append(f'    <failure type="warning" message={attr("warning: " + r.summary)}>{body(r)}</failure>')
        elif r.status == Status.WARN:
            lines.append(f'    <skipped type="warning" message={attr("warning: " + r.summary)}>{body(r)}</skipped>')
        elif r.status == Status.SKIP:
            lines.append(f"    <skipped message={attr(r.summary)}/>")
        else:
            lines.append(f"    <system-out>{body(r)}</system-out>")
        lines.append("  </testcase>")
    for name in run.unfinished:
        lines.append(f'  <testcase classname={attr(classname)} name={attr(name)} time="0.000">')
        lines.append(f'    <error type="interrupted" message={attr("not finished: the run was interrupted")}/>')
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"
