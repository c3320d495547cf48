"""Runbook: "Check Worker Logs", "Celery Worker is Ready", "Tasks are Being Received".

``docker logs pms-worker-v2 --since 60m | egrep -n 'received|succeeded|ERROR|Traceback'``
and the runbook's red flags, as a summary: the ready line and registered tasks,
task counts, and each red flag with a count, a few quoted (redacted) lines and the
runbook's fix. A red flag that only appears *before* the last ``ready`` line is a
warning, not a failure: the worker got past it (a restart, wait-for-deps retrying).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pmsops import results
from pmsops.errors import UsageError
from pmsops.host.containers import inspect_container, state_result
from pmsops.host.docker import DEFAULT_TIMEOUT, container_logs
from pmsops.redaction import redact_with_fingerprints
from pmsops.results import Result

MAX_QUOTES = 3
MAX_QUOTE_LENGTH = 200
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_READY = re.compile(r"(celery@\S+) ready\.")
_RECEIVED = re.compile(r"Task \S+\[[^\]]+\] received")
_SUCCEEDED = re.compile(r"Task \S+\[[^\]]+\] succeeded")
_TASKS_HEADER = re.compile(r"^\s*(\[tasks\]|.*\bTasks:)\s*$")
_TASK_LINE = re.compile(r"^\s+[.\-*]\s+([A-Za-z_][\w.]*)\s*(\[.*\])?\s*$")
_START_WORKER = re.compile(r"start_worker\.sh active")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^\d+(\.\d+)?$|^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class Signal:
    """A red flag: what to look for, how bad it is, and the runbook's answer ({container} is filled in)."""

    key: str
    level: str
    pattern: re.Pattern[str]
    meaning: str
    hint: str


SIGNALS: tuple[Signal, ...] = (
    Signal(
        "auth",
        "fail",
        re.compile(r"Authentication required|invalid username-password pair|NOAUTH|WRONGPASS", re.I),
        "Redis rejects the worker's password",
        "compare each Redis URL of {container} (REDIS_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND) with Redis's requirepass: pmsops host check"
        " --worker {container} names the wrong one (one URL: pmsops compare-password-hash --container coolify-redis; runbook: Redis Authentication"
        " Errors)",
    ),
    Signal(
        "refused",
        "fail",
        re.compile(r"Connection refused|Error 111 connecting", re.I),
        "a dependency refuses connections",
        "is it up and on the worker's networks? pmsops host networks {container} (runbook: Database Connection Issues)",
    ),
    Signal(
        "dns",
        "fail",
        re.compile(r"Temporary failure in name resolution|Name or service not known|name resolution failed", re.I),
        "a host name does not resolve",
        "docker network connect <supabase-network> {container}; docker restart {container} (runbook: Networks (CRITICAL))",
    ),
    Signal(
        "db-unavailable",
        "fail",
        re.compile(r"Database is temporarily unavailable|Failed to update sync log", re.I),
        "the worker cannot reach the database",
        "attach the Supabase network: pmsops host networks {container} (runbook: Database Temporarily Unavailable)",
    ),
    Signal(
        "task-failed",
        "fail",
        re.compile(r"Task \S+\[[^\]]+\] raised unexpected"),
        "tasks failed",
        "read the Traceback that follows; missing variables: pmsops host env-diff pms-backend {container} (runbook: Worker Logs Show Task Failures)",
    ),
    Signal(
        "traceback",
        "fail",
        re.compile(r"Traceback \(most recent call last\)"),
        "Python tracebacks",
        "docker logs {container} --since 60m 2>&1 | grep -n -A 20 Traceback (runbook: Worker Logs Show Task Failures)",
    ),
    Signal(
        "root",
        "warn",
        re.compile(r"SecurityWarning|running as root|superuser privileges", re.I),
        "the worker runs as root (Celery's SecurityWarning)",
        "build with Dockerfile.worker, which runs as a non-root user (runbook: Worker Runs as Non-Root User)",
    ),
)


@dataclass
class LogScan:
    """Line numbers (1-based) of everything the runbook looks for."""

    lines: list[str]
    ready: list[int] = field(default_factory=list)
    node: str | None = None
    tasks: list[str] = field(default_factory=list)
    received: int = 0
    succeeded: int = 0
    start_worker: bool = False
    hits: dict[str, list[int]] = field(default_factory=dict)


def validate_since(since: str) -> str:
    """Docker's ``--since``: a duration (60m, 1h30m), a date or a Unix time; anything else is exit 2."""
    if not _DURATION.match(since.strip()):
        raise UsageError(f"--since takes a duration like 60m or 2h, a date or a Unix time, not {since!r}")
    return since.strip()


def _collect_tasks(lines: list[str], start: int, into: list[str]) -> None:
    for line in lines[start:]:
        match = _TASK_LINE.match(line)
        if not match:
            break
        if match.group(1) not in into:
            into.append(match.group(1))


def scan_logs(text: str) -> LogScan:
    """Find the ready line, the registered tasks, task counts and every red flag."""
    scan = LogScan([_ANSI.sub("", line) for line in text.splitlines()])
    for number, line in enumerate(scan.lines, start=1):
        ready = _READY.search(line)
        if ready:
            scan.ready.append(number)
            scan.node = ready.group(1)
        if _TASKS_HEADER.match(line):
            _collect_tasks(scan.lines, number, scan.tasks)
        scan.received += bool(_RECEIVED.search(line))
        scan.succeeded += bool(_SUCCEEDED.search(line))
        scan.start_worker = scan.start_worker or bool(_START_WORKER.search(line))
        for signal in SIGNALS:
            if signal.pattern.search(line):
                scan.hits.setdefault(signal.key, []).append(number)
    return scan


def quote(scan: LogScan, numbers: list[int]) -> list[str]:
    """The last few matching lines, redacted and shortened: enough to recognise, never a dump.

    A secret in a quoted line becomes its fingerprint (``AUTH default <len=… pbkdf2=… salt=…>``):
    the operator can tell which password the worker used without seeing it.
    """
    quoted = []
    for number in numbers[-MAX_QUOTES:]:
        line = redact_with_fingerprints(scan.lines[number - 1].strip())
        quoted.append(f"line {number}: {line[:MAX_QUOTE_LENGTH]}{'…' if len(line) > MAX_QUOTE_LENGTH else ''}")
    return quoted


def ready_result(scan: LogScan, container: str, since: str) -> Result:
    """The runbook's "Expected: celery@pms-worker-v2 ready." plus the registered tasks."""
    if not scan.ready:
        return results.warn(
            "logs ready",
            f"no 'celery@… ready.' line since {since}",
            hint=f"started earlier? try --since 24h; never ready? docker logs {container} --tail 100 (runbook: Worker Crashes on Startup)",
        )
    notes = [f"registered: {task}" for task in scan.tasks[:10]] + ([f"… and {len(scan.tasks) - 10} more"] if len(scan.tasks) > 10 else [])
    if not scan.start_worker:
        notes.append(f"no '[worker] start_worker.sh active' line: is a Start Command override active? pmsops host worker-cmd {container}")
    tasks = f"{len(scan.tasks)} tasks registered" if scan.tasks else "no task list in the window"
    return results.ok(
        "logs ready",
        f"{scan.node} ready ({tasks})",
        notes=notes,
        details={"node": scan.node, "tasks": scan.tasks, "start_worker_sh": scan.start_worker},
    )


def tasks_result(scan: LogScan, since: str) -> Result:
    details = {"received": scan.received, "succeeded": scan.succeeded}
    if not scan.received:
        return results.skip("logs tasks", f"no task received since {since}", details=details)
    return results.ok("logs tasks", f"{scan.received} received, {scan.succeeded} succeeded since {since}", details=details)


def signal_result(signal: Signal, scan: LogScan, container: str, hint: str | None = None) -> Result:
    """Fail (or warn) with a count and quotes; only a warning if the worker became ready after the last one."""
    numbers = scan.hits[signal.key]
    resolved = signal.level == "fail" and bool(scan.ready) and numbers[-1] < scan.ready[-1]
    summary = f"{len(numbers)} line(s): {signal.meaning}" + (" (all before the last ready line: the worker got past it)" if resolved else "")
    make = results.fail if signal.level == "fail" and not resolved else results.warn
    return make(
        f"logs {signal.key}",
        summary,
        hint=hint or signal.hint.format(container=container),
        notes=quote(scan, numbers),
        details={"count": len(numbers), "lines": numbers[-20:], "before_ready": resolved},
    )


def log_results(scan: LogScan, container: str, since: str, hints: dict[str, str] | None = None) -> list[Result]:
    """Ready, task counts, then one result per red flag found (or one ok when there is none); ``hints`` replace a
    signal's hint by key (``host check`` points the auth hint at the URL it found wrong)."""
    if not scan.lines:
        return [results.warn("logs", f"no log output since {since}", hint=f"try --since 24h, or docker logs {container} --tail 100")]
    out = [ready_result(scan, container, since), tasks_result(scan, since)]
    flags = [signal_result(s, scan, container, (hints or {}).get(s.key)) for s in SIGNALS if s.key in scan.hits]
    if not flags:
        flags = [results.ok("logs errors", f"no authentication, connection, DNS errors or tracebacks in {len(scan.lines)} lines since {since}")]
    return out + flags


def check_logs(
    container: str = "pms-worker-v2",
    since: str = "60m",
    tail: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    with_state: bool = True,
    auth_hint: str | None = None,
) -> list[Result]:
    """``pmsops host logs``: inspect first (registers the container's secrets), then scan its logs."""
    window = validate_since(since)
    inspected = inspect_container(container, timeout)
    scan = scan_logs(container_logs(container, since=window, tail=tail, timeout=timeout))
    out = [state_result(inspected)] if with_state else []
    return out + log_results(scan, container, window, {"auth": auth_hint} if auth_hint else None)
