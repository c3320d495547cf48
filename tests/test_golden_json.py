"""Golden files of every command's ``--json`` output against the reference stack (#28).

Captured before the refactor of ``src/``: each command once with the stack healthy, then the commands that make sense
with one component stopped (worker, db, redis, api, platform), one at a time. What differs from run to run (times,
durations, ids, ports, paths, the host name, counts left by earlier tests) is replaced by a placeholder by
:func:`normalise` before the comparison; everything else, the exit code included, must stay equal unless a fix says so.

``PMSOPS_UPDATE_GOLDEN=1`` writes tests/golden/*.json instead of comparing (review the diff before committing it).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from observe_stack import connection_of, reset_limits

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PMSOPS_UPDATE_GOLDEN") == "1"
SALT = "golden"
"""The fingerprint salt of compare-password-hash (the password itself is random per stack: its fingerprint is normalised)."""

# --- the cases -------------------------------------------------------------------------------------------------------
# Arguments may name {worker} (the sandbox worker), {airbnb} and {paused} (its airbnb and its paused fewo_direkt connection),
# {redis_url} and {out} (a temp dir).
# --timeout 3 wherever /health/ready is asked: the API pings Celery for up to 2 s itself when the worker is away.

DOCTOR = ("doctor", "--json", "--timeout", "3")
CHECK_REDIS = ("check", "redis", "--json", "--timeout", "1")
CHECK_DB = ("check", "db", "--json", "--timeout", "1")
CHECK_HEALTH = ("check", "health", "--json", "--timeout", "3")
CELERY = ("--json", "--timeout", "1")
WORKER_CHECK = ("worker-check", "--json", "-d", "{worker}", "--timeout", "1")
TOKEN = ("token", "--json", "--timeout", "2")
CONNECTIONS = ("connections", "list", "--json", "--timeout", "2")
SYNC_LOGS = ("sync", "logs", "{airbnb}", "--limit", "1", "--json", "--timeout", "2")
TOP = ("top", "--json", "--timeout", "1", "--broadcast-timeout", "1")

HEALTHY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("doctor", DOCTOR),
    ("check-redis", CHECK_REDIS),
    ("check-db", CHECK_DB),
    ("check-health", CHECK_HEALTH),
    ("celery-ping", ("celery", "ping", *CELERY)),
    ("celery-registered", ("celery", "registered", *CELERY)),
    ("celery-active", ("celery", "active", *CELERY)),
    ("celery-stats", ("celery", "stats", *CELERY)),
    ("worker-check", WORKER_CHECK),
    ("token", TOKEN),
    ("connections-list", CONNECTIONS),
    ("smoke", ("smoke", "--json", "--timeout", "3", "--wait", "30")),
    # one operation per trigger: the logs of a full sync share one created_at, and the API breaks that tie by random id
    ("sync-trigger", ("sync", "trigger", "{airbnb}", "--type", "availability", "--wait", "30", "--json", "--timeout", "2")),
    ("sync-logs", SYNC_LOGS),
    ("sync-run", ("sync", "run", "{airbnb}", "--type", "availability", "--wait", "30", "--json")),
    # on the paused connection: others have retries of earlier tests open, which reap counts as live
    ("sync-reap-dry-run", ("sync", "reap", "--dry-run", "--older-than", "1d", "--connection", "{paused}", "--json")),
    ("db-check", ("db", "check", "--json")),
    ("db-migrate", ("db", "migrate", "--json")),
    ("top", TOP),
    ("redis-url-check", ("redis-url", "check", "{redis_url}", "--json")),
    ("compare-password-hash", ("compare-password-hash", "--requirepass-stdin", "--salt", SALT, "--json")),
    ("explain-503", ("explain", "503", "--json")),
    # --since 1s: the report digests the stack's last hour, and other tests leave failed syncs in it
    ("report", ("report", "--json", "-o", "{out}", "--no-docker", "--since", "1s", "--timeout", "2")),
)
STOPPED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("doctor", DOCTOR),
    ("check-redis", CHECK_REDIS),
    ("check-db", CHECK_DB),
    ("check-health", CHECK_HEALTH),
    ("celery-ping", ("celery", "ping", *CELERY)),
    ("worker-check", WORKER_CHECK),
    ("token", TOKEN),
    ("connections-list", CONNECTIONS),
    ("sync-logs", SYNC_LOGS),
    ("smoke", ("smoke", "--json", "--timeout", "3", "--wait", "5")),
    ("top", TOP),
)
ONLY_WHEN_STOPPED: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "worker": (("celery-registered", ("celery", "registered", *CELERY)), ("celery-stats", ("celery", "stats", *CELERY))),
    "db": (("db-check", ("db", "check", "--json")),),
    "redis": (("celery-stats", ("celery", "stats", *CELERY)),),
}
COMPONENTS = ("worker", "db", "redis", "api", "platform")


@dataclass(frozen=True)
class Case:
    state: str
    name: str
    args: tuple[str, ...]

    @property
    def component(self) -> str | None:
        return None if self.state == "healthy" else self.state.removesuffix("-stopped")

    @property
    def golden(self) -> Path:
        return GOLDEN / f"{self.state}--{self.name}.json"


CASES = [Case("healthy", name, args) for name, args in HEALTHY] + [
    Case(f"{component}-stopped", name, args) for component in COMPONENTS for name, args in STOPPED + ONLY_WHEN_STOPPED.get(component, ())
]


# --- normalisation ---------------------------------------------------------------------------------------------------

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), placeholder)
    for pattern, placeholder in (
        (UUID, "<uuid>"),  # first: the patterns below see "<uuid>"
        (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?", "<time>"),
        (r"\b\d{8}T\d{6}Z\b", "<time>"),  # report file names
        (r"\b\d{4}-\d\d-\d\d\b", "<date>"),  # sync windows: today + N days
        (r"((?:127\.0\.0\.1|localhost|\[::1\]):)\d+", r"\1<port>"),
        (r"\bport \d+\b", "port <port>"),
        (r"\b\d+(?:\.\d+)? ?ms\b", "<ms>"),
        (r"#[0-9a-f]{8}\b", "#<id>"),  # a worker's process id in the sync log (name#hex)
        (r"\b(pbkdf2|sha256|salt)=[0-9a-f]+", r"\1=<hex>"),
        (r"\bpid \d+", "pid <pid>"),
        (r"\bup \d+(?:\.\d+)? ?(?:s|min|h|d)\b", "up <age>"),
        (r"^(<uuid>  .*?)(?:never|\d+ (?:s|min|h|d) ago)$", r"\1<never-or-age>"),  # LAST SYNC of connections list: other tests sync
        (r"\b\d+ (?:s|min|h|d) ago\b *", "<age> ago "),  # the WHEN column of sync logs, with its padding
        (r"\b\d+ tasks? processed\b", "<n> tasks processed"),
        (r"\bexpires in \d+ min\b", "expires in <n> min"),
        (r"\bwithin \d+(?:\.\d+)? s\b", "within <s>"),  # doctor gives each check what is left of --timeout since its start
        (r"\b(next (?:retry|attempt) in) \d+(?:\.\d+)? ?s\b", r"\1 <s>"),
        (r"\bretry \d+/", "retry <n>/"),
        (r"\b(Redis|PostgreSQL) \d+(?:\.\d+)*", r"\1 <version>"),
    )
)
TIME_KEYS = frozenset({"taken_at", "last_seen", "opened_at", "checked_at", "created_at", "updated_at", "since", "at"})
DURATION_SUFFIXES = ("_ms", "_s", "seconds", "seconds_left", "elapsed", "duration", "took", "age", "uptime")
PLACEHOLDER_KEYS = {"pid": "<pid>", "port": "<port>", "version": "<version>", "pbkdf2": "<hex>"}
"""Replaced unless null (pbkdf2: the fingerprint of a password random per stack)."""
NULL_OR_NOT = {
    "last_sync_at": "<time-or-null>",  # null until some test syncs the connection
    # the oldest task waiting in a queue: none, unless an earlier test left a retry with a countdown behind
    "oldest_task_id": "<history>",
    "oldest_age_s": "<history>",
    "oldest_unacked_age_s": "<history>",
    "platform_metadata": "<history>",  # the platform's sync cursors, written by the first bookings sync
    "conflicts": "<history>",  # found among the bookings received (none after the first sync)
}
"""Replaced null or not: whether there is a value at all depends on earlier tests."""
HISTORY_COUNTS = frozenset(
    {
        # left by earlier tests on the shared stack: tasks processed, logs kept, tokens left, bookings already imported
        # (and a full sync's availability push races its own bookings import: the first one sees 5 or 7 ranges)
        "processed",
        "total",
        "ready",
        "unacked",
        "tokens",
        "created",
        "updated",
        "unchanged",
        "attempt",
        "retry_count",
        "retry",
        "failures",
        "success",
        "failed",
        "live",
        "ranges",
        "unavailable_nights",
        "received",  # bookings since the connection's cursor: 2 on the first sync, 0 after
        "prefetch_count",  # Celery raises it for each countdown task the worker holds
    }
)
SCHEMA_ONLY = frozenset({"recent"})
"""Lists whose items other tests leave (top's recent syncs): only the keys of their items are kept."""
ORDER_FREE = frozenset({"logs"})
"""Lists in an order the API breaks by random id (logs created in one statement share created_at): sorted."""
ORDER_FREE_NOTES = frozenset({"6 sync logs"})
"""Smoke's sync-logs step lists those logs in the API's order, one note each: sorted."""


def _string(text: str, literals: tuple[tuple[str, str], ...]) -> str:
    for literal, placeholder in literals:
        text = text.replace(literal, placeholder)
    for pattern, placeholder in PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def _value(key: str, value: Any, literals: tuple[tuple[str, str], ...]) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in NULL_OR_NOT:
        return NULL_OR_NOT[key]
    if key in PLACEHOLDER_KEYS and value is not None:
        return PLACEHOLDER_KEYS[key]
    if key in TIME_KEYS and number:  # epoch seconds; times in strings are found by PATTERNS
        return "<time>"
    if number and key.endswith(DURATION_SUFFIXES):
        return "<ms>" if key.endswith("_ms") else "<s>"
    if key in HISTORY_COUNTS and value is not None and not isinstance(value, (str, bool)):
        return "<n>" if number else "<counts>"
    if key.startswith("spark_") and isinstance(value, list):
        return ["<n>"] * len(value)
    if key in SCHEMA_ONLY and isinstance(value, list):
        return sorted({", ".join(sorted(item)) for item in value if isinstance(item, dict)})
    found = normalise(value, literals)
    if key in ORDER_FREE and isinstance(found, list):
        return sorted(found, key=lambda item: json.dumps(item, sort_keys=True))
    return found


def normalise(obj: Any, literals: tuple[tuple[str, str], ...] = ()) -> Any:
    """``obj`` with every value that differs from run to run replaced by a placeholder ("<ms>", "<uuid>", "<port>",
    "<time>", "<n>"…); ``literals``: (text, placeholder) pairs replaced in every string first (paths, the worker's name)."""
    if isinstance(obj, dict):
        out = {_string(key, literals): _value(key, value, literals) for key, value in obj.items()}
        if out.get("label") in ORDER_FREE_NOTES and isinstance(out.get("notes"), list):
            out["notes"] = sorted(out["notes"])
        return out
    if isinstance(obj, list):
        return [normalise(item, literals) for item in obj]
    if isinstance(obj, str):
        return _string(obj, literals)
    return obj


# --- capturing -------------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    env_file: str
    env: dict[str, str]
    fill: dict[str, str]
    literals: tuple[tuple[str, str], ...]
    requirepass: str


def _ready(env: dict[str, str]) -> bool:
    """/health/ready answers 200 with every component up and the worker listed: the stack is whole again."""
    import httpx

    try:
        body = httpx.get(env["PMS_API_URL"] + "/health/ready", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    components = body.get("components") or {}
    up = body.get("status") == "up" and all(c.get("status") == "up" for c in components.values())
    return up and bool(components.get("celery", {}).get("details", {}).get("workers"))


def _wait_ready(env: dict[str, str]) -> None:
    from pmsops.sandbox.processes import wait_until

    wait_until(lambda: _ready(env), 30, "waiting for the stack to be healthy again: not done")


def _as_a_new_process() -> None:
    """Forget kombu's process-wide connection pools. The commands run in this process, one after another; a real pmsops
    run is a new process. Kept across a Redis restart, the pool hands the next broadcast a connection the old Redis
    closed, and that command reports "closed the connection at once" (pmsops top in one process shows the same once)."""
    import kombu.pools

    kombu.pools.reset()


class Captures:
    """Each state's outputs, captured once (all its commands in one outage) on the first test that asks for them."""

    def __init__(self, sandbox, out: Path):
        self.sandbox, self.out = sandbox, out
        self.by_state: dict[str, dict[str, dict[str, Any]]] = {}
        self.failed: dict[str, BaseException] = {}

    def stack(self) -> Stack:
        sandbox, env = self.sandbox, self.sandbox.env()
        host = socket.gethostname()
        literals = (
            (str(self.out), "<out>"),
            (str(sandbox.directory), "<sandbox>"),
            (sandbox.worker_name, "<worker>"),
            (f"@{host}", "@<host>"),
        )
        fill = {
            "worker": sandbox.worker_name,
            "airbnb": connection_of(env, "airbnb"),
            "paused": connection_of(env, "fewo_direkt"),
            "redis_url": env["REDIS_URL"],
            "out": str(self.out),
        }
        return Stack(str(sandbox.env_path), env, fill, literals, unquote(urlsplit(env["REDIS_URL"]).password or ""))

    def of(self, state: str, cli) -> dict[str, dict[str, Any]]:
        if state != "healthy":
            self.of("healthy", cli)  # first: its smoke leaves the syncs that top lists, whichever cases were selected
        if state in self.failed:  # once: not one more outage per case of a state that could not be captured
            raise RuntimeError(f"capturing {state} failed: {self.failed[state]!r}")
        if state not in self.by_state:
            try:
                self.by_state[state] = self._capture(state, cli)
            except Exception as exc:
                self.failed[state] = exc
                raise
        return self.by_state[state]

    def _capture(self, state: str, cli) -> dict[str, dict[str, Any]]:
        stack = self.stack()
        _as_a_new_process()
        _wait_ready(stack.env)
        reset_limits(stack.env)  # no breaker or empty bucket left by an earlier test decides a verdict here
        cases = [case for case in CASES if case.state == state]
        component = cases[0].component
        if component:
            self.sandbox.stop(component)
        try:
            return {case.name: self._run(case, stack, cli) for case in cases}
        finally:
            if component:
                self.sandbox.start(component)
                reset_limits(stack.env)
                _wait_ready(stack.env)
                _as_a_new_process()

    @staticmethod
    def _run(case: Case, stack: Stack, cli) -> dict[str, Any]:
        args = [arg.format(**stack.fill) for arg in case.args]
        stdin = stack.requirepass + "\n" if "--requirepass-stdin" in args else None
        result = cli("--env-file", stack.env_file, *args, input=stdin)
        try:
            stdout = json.loads(result.stdout)
        except ValueError:
            stdout = {"not json": result.stdout[-2000:], "stderr": result.stderr[-2000:]}
        return {"args": list(case.args), "exit_code": result.exit_code, "stdout_json": normalise(stdout, stack.literals)}


@pytest.fixture(scope="module")
def captures(sandbox, tmp_path_factory):
    return Captures(sandbox, tmp_path_factory.mktemp("golden-out"))


# --- comparing -------------------------------------------------------------------------------------------------------


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _diff(expected: str, actual: str, name: str) -> str:
    lines = difflib.unified_diff(expected.splitlines(), actual.splitlines(), f"golden/{name}", "now", lineterm="")
    return "\n".join(list(lines)[:60])


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="captured as root: worker-check's user step fails for UID 0 (and passes for another user)")


def _param(case: Case):
    marks = [AS_ROOT] if case.name == "worker-check" else []
    if case.state != "healthy":
        marks.append(pytest.mark.slow)  # each stopped component costs a stop, a restart and a readiness wait: make test-full
    return pytest.param(case, id=f"{case.state}--{case.name}", marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_json_output_and_exit_code_equal_the_golden_file(case, captures, cli):
    actual = _dumps(captures.of(case.state, cli)[case.name])

    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        case.golden.write_text(actual, encoding="utf-8")
        pytest.skip(f"PMSOPS_UPDATE_GOLDEN=1: wrote {case.golden.name}")
    assert case.golden.exists(), f"no golden file {case.golden.name}: run with PMSOPS_UPDATE_GOLDEN=1 and review it"
    expected = case.golden.read_text(encoding="utf-8")
    if actual != expected:
        pytest.fail(_diff(expected, actual, case.golden.name), pytrace=False)


def test_every_golden_file_belongs_to_a_case():
    assert sorted(p.name for p in GOLDEN.glob("*.json")) == sorted(case.golden.name for case in CASES)


def test_normalise_replaces_what_changes_between_runs_and_keeps_the_rest():
    report = {
        "duration_ms": 12.5,
        "exit_code": 1,
        "results": [
            {
                "summary": "redis://:***@127.0.0.1:53097/0: PONG from Redis 7.0.15 in 1.3 ms",
                "notes": ["task 82076048-d22d-441f-bf3d-6a5448a9bf08", "created 2026-12-07T22:28:36.778603+00:00"],
                "details": {"pid": 28845, "uptime_s": 2, "port": 53097, "processed": 3, "status": "ok", "path": "/tmp/x/sandbox.env"},
            }
        ],
    }

    assert normalise(report, (("/tmp/x", "<sandbox>"),)) == {
        "duration_ms": "<ms>",
        "exit_code": 1,
        "results": [
            {
                "summary": "redis://:***@127.0.0.1:<port>/0: PONG from Redis <version> in <ms>",
                "notes": ["task <uuid>", "created <time>"],
                "details": {"pid": "<pid>", "uptime_s": "<s>", "port": "<port>", "processed": "<n>", "status": "ok", "path": "<sandbox>/sandbox.env"},
            }
        ],
    }
