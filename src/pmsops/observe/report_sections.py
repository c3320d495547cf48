"""``pmsops report``'s sections: each reads one part of the system (doctor, the read-only smoke, the host, the
environment's fingerprints, versions, the snapshot, the sync logs, worker logs), bounded and recording its own
failure, run concurrently by :func:`run_sections`. Rendering is :mod:`pmsops.observe.report_views`; the bundle and
its archive :mod:`pmsops.observe.report`."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pmsops import results
from pmsops.redaction import derive_fingerprints, fingerprint, redact, redact_obj
from pmsops.results import Result, Status, worst

RECENT_FAILED = 50
EVENTS_LIMIT = 500
LOG_TAIL_LINES = 200

RUNBOOK: list[tuple[str, str, str]] = [
    # (result name prefix or marker, runbook section, fix)
    ("load environment", "Quick Smoke › Step 1: Load Environment", "load the env file: pmsops --env-file /root/pms_env.sh report"),
    ("sync-logs", "Troubleshooting › Database Connection Issues", "the sync logs live in PostgreSQL: pmsops check db"),
    (
        "redis-url",
        "Redis URL Format + Password Encoding",
        "URL-encode the password (pmsops encode-redis-password) and use redis://:PASSWORD@HOST:6379/0",
    ),
    (
        "redis",
        "Troubleshooting › Redis Authentication Errors",
        "compare the URL's password with requirepass (pmsops compare-password-hash); encode special characters",
    ),
    ("db", "Troubleshooting › Database Connection Issues", "check DATABASE_URL and the worker's networks (pmsops check db; pmsops host networks)"),
    (
        "celery",
        "Troubleshooting › Celery Worker Not Detected",
        "start the worker, check its start command and CELERY_BROKER_URL (pmsops celery ping; pmsops host worker-cmd)",
    ),
    ("workers", "Troubleshooting › Celery Worker Not Detected", "start the missing worker (docker ps | grep worker; pmsops host worker-cmd)"),
    ("health", "Verification Steps › 1. Check /health/ready Endpoint", "see which component is down in the details; fix that dependency first"),
    (
        "channel connection",
        "Quick Smoke › Step 4: Get Channel Connection ID",
        "list the connections (pmsops connections list); check AGENCY_ID and the token's agency",
    ),
    ("token", "Quick Smoke › Step 2: Get JWT Token", "check SB_URL, ANON_KEY, EMAIL and PASSWORD (pmsops token)"),
    (
        "breaker",
        "Troubleshooting › Worker Logs Show Task Failures",
        "the platform failed repeatedly: check the platform's status and PLATFORM_BASE_URL; the breaker half-opens by itself",
    ),
    (
        "syncs",
        "Troubleshooting › Worker Logs Show Task Failures",
        "read the error of the failed logs below; pmsops sync logs --json; retry with pmsops sync run once fixed",
    ),
    ("logs", "Verification Steps › 2. Check Worker Logs", "read the quoted worker log lines; pmsops host logs"),
    ("host", "Redis + Celery Worker Setup › Deployment Steps", "follow the failing host check's hint (pmsops host check)"),
]


def context_name(explicit: str | None = None) -> str:
    """The context in the file name: --context-name or the run's context (the CLI passes both), else ``default``.

    One function on purpose: when pmsops gets named contexts, this is what changes.
    """
    name = explicit or "default"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "default"
    return cleaned[:48]


def runbook_for(name: str) -> tuple[str, str]:
    """The runbook section and fix for a failing item, by its name."""
    lowered = re.sub(r"^\d+ ", "", name.lower())  # smoke steps are numbered: "3 health"
    for prefix, section, fix in RUNBOOK:
        if lowered.split(": ")[-1].startswith(prefix) or lowered.startswith(prefix):
            return section, fix
    return "Troubleshooting", "see the hint of this result"


@dataclass
class Section:
    """One part of the report; it records its own failure instead of aborting the report."""

    name: str
    title: str
    results: list[Result] = field(default_factory=list)
    data: Any = None
    evidence: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0

    @property
    def status(self) -> Status:
        if self.error:
            return Status.FAIL
        return worst(self.results) if self.results else Status.SKIP


@dataclass
class Options:
    since_seconds: float = 3600.0
    since_text: str = "60m"
    timeout: float = 3.0
    expect_workers: int | None = None
    worker_logs: list[str] = field(default_factory=list)
    docker: bool = True
    context: str = "default"


# --- sections --------------------------------------------------------------------------------------------


def _doctor(settings, opts: Options) -> Section:
    from pmsops.checks.doctor import run_doctor

    section = Section("doctor", "doctor")
    section.results = run_doctor(settings, opts.timeout, opts.expect_workers)
    section.evidence["evidence/doctor.txt"] = _results_text("pmsops doctor", section.results)
    return section


def _smoke(settings, opts: Options) -> Section:
    """The read-only smoke steps: environment, token, /health/ready, a channel connection. Nothing is triggered.
    The smoke command's own steps (:func:`pmsops.procedures.smoke.run_smoke` with ``trigger=False``), named by label."""
    from pmsops.procedures.smoke import run_smoke

    section = Section("smoke", "read-only smoke (steps 1-4; nothing triggered)")
    run = run_smoke(settings, http_timeout=opts.timeout, trigger=False)
    for result in run.results:
        if result.name in ("trigger", "sync-logs"):
            continue  # steps 5-6 trigger a sync: never from a report
        result.name = result.label or result.name
        section.results.append(result)
    section.evidence["evidence/smoke.txt"] = _results_text("pmsops smoke (read-only steps)", section.results)
    return section


def docker_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Whether a Docker engine answers (``docker version``), and why not."""
    import shutil

    if shutil.which("docker") is None:
        return False, "no docker CLI on PATH"
    from pmsops.host.docker import run_docker

    try:
        output = run_docker(["version", "--format", "{{.Server.Version}}"], timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - an engine that fails to answer is simply not reachable
        return False, redact(f"{type(exc).__name__}: {exc}")
    if not output.ok:
        return False, redact(
            (output.stderr or output.stdout).strip().splitlines()[0] if (output.stderr or output.stdout).strip() else f"exit {output.returncode}"
        )
    return True, f"Docker {output.stdout.strip()}"


def _host(settings, opts: Options) -> Section:
    section = Section("host", "host check")
    reachable, why = docker_reachable(opts.timeout) if opts.docker else (False, "--no-docker")
    if not reachable:
        section.results = [results.skip("host check", f"skipped: no Docker engine reachable ({why})")]
    else:
        from pmsops.host.check import Targets, run_host_check

        section.results = run_host_check(Targets(since=opts.since_text))
    section.evidence["evidence/host-check.txt"] = _results_text("pmsops host check", section.results)
    return section


FINGERPRINT_PREFIXES = (
    "CELERY_",
    "REDIS_",
    "DATABASE_",
    "DB_",
    "SYNC_",
    "PLATFORM_",
    "WORKER_",
    "PMS_",
    "SB_",
    "SUPABASE_",
    "JWT_",
    "ENABLE_",
    "CHANNEL_",
    "MODULES_",
    "SENTRY_",
    "PMSOPS_",
)


def env_fingerprints(env: dict[str, str]) -> list[dict[str, Any]]:
    """Names, lengths and fingerprints (:func:`pmsops.redaction.fingerprint`) of the variables pmsops reads — never values."""
    from pmsops.settings import ALIASES, SECRET_VARIABLES, URL_VARIABLES, WORKER_RECOMMENDED_VARIABLES, WORKER_REQUIRED_VARIABLES, is_secret_name

    known = set(SECRET_VARIABLES) | set(URL_VARIABLES) | set(WORKER_REQUIRED_VARIABLES) | set(WORKER_RECOMMENDED_VARIABLES)
    known |= {n for names in ALIASES.values() for n in names} | {"EMAIL", "AGENCY_ID", "CID", "ENCRYPTION_KEY"}
    names = [n for n in sorted(env) if n in known or n.startswith(FINGERPRINT_PREFIXES) or is_secret_name(n)]
    derive_fingerprints(env[n] for n in names)
    return [{"name": n, "length": len(env[n]), "fingerprint": fingerprint(env[n]) if env[n] else None, "secret": is_secret_name(n)} for n in names]


def _environment(settings, opts: Options) -> Section:
    section = Section("environment", "environment fingerprints")
    rows = env_fingerprints(dict(settings.env))
    section.data = rows
    section.results = [results.ok("environment", f"{len(rows)} variables fingerprinted (names, lengths, salted fingerprints; never values)")]
    lines = [f"{r['name']:<32} {r['fingerprint'] or 'len=0'}{'  (secret)' if r['secret'] else ''}" for r in rows]
    section.evidence["evidence/env-fingerprints.txt"] = (
        "# name and fingerprint (length, salted PBKDF2 prefix; see the README's security model) — never values\n" + "\n".join(lines) + "\n"
    )
    return section


def _versions(settings, opts: Options) -> Section:
    """pmsops and its libraries, and the Redis and PostgreSQL servers (each may fail alone)."""
    from importlib import metadata

    from pmsops import __version__

    section = Section("versions", "versions")
    found: dict[str, str] = {"pmsops": __version__}
    for dist in ("celery", "kombu", "redis", "asyncpg", "rich", "typer"):
        try:
            found[dist if dist != "redis" else "redis-py"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"

    def redis_server() -> Result:
        from pmsops.checks.redis import client_for

        url = settings.require("REDIS_URL")
        client = client_for(url, opts.timeout)
        try:
            found["Redis server"] = str(client.info("server").get("redis_version"))
        finally:
            client.close()
        return results.ok("redis server", f"Redis {found['Redis server']}")

    def pg_server() -> Result:
        import asyncio

        from pmsops.checks.db import connect

        async def ask() -> str:
            conn = await connect(settings.require("DATABASE_URL"), opts.timeout)
            try:
                return await conn.fetchval("SHOW server_version")
            finally:
                await conn.close(timeout=opts.timeout)

        found["PostgreSQL server"] = _database(settings, opts, lambda: asyncio.run(ask()))
        return results.ok("postgresql server", f"PostgreSQL {found['PostgreSQL server']}")

    section.results = [results.ok("libraries", ", ".join(f"{k} {v}" for k, v in found.items()))]
    section.results += results.run_check("redis server", redis_server) + results.run_check("postgresql server", pg_server)
    for r in section.results:
        if r.status is Status.FAIL:
            r.status = Status.WARN  # an unknown server version is a gap in the evidence, not the incident
    section.data = found
    section.evidence["evidence/versions.txt"] = "".join(f"{k}: {v}\n" for k, v in found.items()) + "".join(
        f"{r.name}: {r.summary}\n" for r in section.results if r.status is not Status.OK
    )
    return section


def _snapshot(settings, opts: Options) -> Section:
    from pmsops.observe.snapshot import collect_once, options_from_settings

    section = Section("snapshot", "workers, queues, active tasks, syncs, platforms")
    snap = collect_once(
        options_from_settings(
            settings,
            expect_workers=opts.expect_workers,
            broadcast_timeout=min(opts.timeout, 2.0),
            db_timeout=opts.timeout,
            redis_timeout=opts.timeout,
        )
    )
    section.data = snap
    section.results = snapshot_results(snap)
    section.evidence["evidence/snapshot.json"] = json.dumps(redact_obj(snap), indent=2, default=str) + "\n"
    return section


def snapshot_results(snap: dict[str, Any]) -> list[Result]:
    """What a snapshot says is wrong, as results (a panel's error, missing workers, open breakers, stuck tasks)."""
    from pmsops.observe.top import breaker_label

    out: list[Result] = []
    workers = snap["workers"]
    if workers.get("error"):
        out.append(results.fail("workers", workers["error"]))
    elif workers.get("missing"):
        silent = ", ".join(w["name"] for w in workers.get("silent") or [])
        out.append(
            results.fail(
                "workers",
                f"{workers['answered']} of {workers['expected']} expected workers answered" + (f"; silent: {silent}" if silent else ""),
                hint="start the missing worker: docker ps | grep worker; pmsops host worker-cmd",
            )
        )
    else:
        out.append(results.ok("workers", f"{workers['answered']} worker(s) answered"))
    queues = snap["queues"]
    if queues.get("error"):
        out.append(results.fail("queues", queues["error"]))
    else:
        depth = ", ".join(f"{q['name']} {q['ready']} ready" for q in queues["items"])
        out.append(results.ok("queues", f"{depth}; {queues['unacked']} reserved"))
    stuck = [t for t in snap["active"].get("items") or [] if t["stuck"]]
    if stuck:
        out.append(results.fail("active", f"{len(stuck)} task(s) running longer than {snap['active']['stuck_after_s']:g} s"))
    for platform in snap["platforms"].get("items") or []:
        breaker = platform["breaker"]
        if breaker["state"] != "closed":
            since = f" (opened {time.strftime('%H:%M:%S UTC', time.gmtime(breaker['opened_at']))})" if breaker.get("opened_at") else ""
            out.append(
                results.fail(
                    f"breaker {platform['platform']}",
                    f"{platform['platform']} circuit {breaker_label(breaker)}{since}",
                    details={"opened_at": breaker.get("opened_at")},
                )
            )
    if snap["platforms"].get("error"):
        out.append(results.fail("breaker", snap["platforms"]["error"]))
    if snap["syncs"].get("error"):
        out.append(results.fail("syncs", snap["syncs"]["error"]))
    return out


SYNC_EVIDENCE_QUERIES = {
    "failed": (
        f"""
        SELECT l.id::text AS id, l.connection_id::text AS connection_id, l.operation_type, l.direction, l.status, l.error, l.task_id,
               COALESCE(l.details->>'platform', c.platform_type) AS platform, l.details->>'error_type' AS error_type,
               l.details->>'retry_count' AS retry_count, extract(epoch FROM l.created_at)::float8 AS created_at,
               extract(epoch FROM l.updated_at)::float8 AS updated_at
        FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
        WHERE l.status = 'failed' AND l.created_at > now() - make_interval(secs => $1::float8)
        ORDER BY l.created_at DESC LIMIT {RECENT_FAILED}"""
    ),
    "buckets": (
        """
        SELECT COALESCE(l.details->>'platform', c.platform_type) AS platform,
               floor(extract(epoch FROM now() - l.created_at)::float8 / $2::float8)::int AS bucket,
               CASE WHEN l.status = ANY(ARRAY['success', 'failed']) THEN l.status ELSE 'retrying' END AS status, count(*)::int AS n
        FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
        WHERE l.status = ANY(ARRAY['triggered', 'queued', 'running', 'success', 'failed'])
          AND l.created_at > now() - make_interval(secs => $1::float8)
          AND (l.status = ANY(ARRAY['success', 'failed']) OR COALESCE((l.details->>'retry_count')::int, 0) > 0)
        GROUP BY 1, 2, 3"""
    ),
    "events": (
        f"""
        SELECT COALESCE(l.details->>'platform', c.platform_type) AS platform, l.status, l.details->>'error_type' AS error_type,
               COALESCE((l.details->>'retry_count')::int, 0) AS retry, extract(epoch FROM l.updated_at)::float8 AS at
        FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
        WHERE l.status = ANY(ARRAY['triggered', 'queued', 'running', 'success', 'failed', 'cancelled'])
          AND l.created_at > now() - make_interval(secs => $1::float8)
          AND (l.status = 'failed' OR COALESCE((l.details->>'retry_count')::int, 0) > 0)
        ORDER BY l.updated_at DESC LIMIT {EVENTS_LIMIT}"""
    ),
    "first_failures": (
        """
        SELECT COALESCE(l.details->>'platform', c.platform_type) AS platform, COALESCE(l.details->>'error_type', 'unknown') AS error_type,
               count(*)::int AS n, extract(epoch FROM min(l.created_at))::float8 AS first_at, extract(epoch FROM max(l.updated_at))::float8 AS last_at
        FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
        WHERE l.status = 'failed' AND l.created_at > now() - make_interval(secs => $1::float8)
        GROUP BY 1, 2 ORDER BY first_at"""
    ),
    "retrying": (
        """
        SELECT COALESCE(l.details->>'platform', c.platform_type) AS platform, count(*)::int AS n,
               string_agg(DISTINCT COALESCE(l.details->>'error_type', 'unknown'), ', ') AS error_types,
               extract(epoch FROM min(l.created_at))::float8 AS first_at
        FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
        WHERE l.status = ANY(ARRAY['triggered', 'queued', 'running']) AND l.created_at > now() - make_interval(secs => $1::float8)
          AND (COALESCE((l.details->>'retry_count')::int, 0) > 0 OR l.details ? 'next_retry_seconds')  -- waits (open breaker) spend no retry
        GROUP BY 1 ORDER BY first_at"""
    ),
}


def _database(settings, opts: Options, fn: Callable[[], Any]) -> Any:
    """Run a database call; a failure becomes one line: 'database unreachable (…)' or 'database query failed (…)'."""
    from pmsops.errors import DependencyError, PmsopsError
    from pmsops.observe.snapshot import _db_words

    try:
        return fn()
    except PmsopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - named, redacted, and raised as the section's failure
        raise DependencyError(_db_words(settings.require("DATABASE_URL"), exc, opts.timeout)) from exc


def bucket_seconds_for(since_seconds: float) -> float:
    """About 30 bars across the window, in whole minutes."""
    return max(60.0, round(since_seconds / 30 / 60) * 60)


def _sync_logs(settings, opts: Options) -> Section:
    import asyncio

    from pmsops.checks.db import connect

    section = Section("sync-logs", "sync logs")
    bucket = bucket_seconds_for(opts.since_seconds)

    async def fetch() -> dict[str, Any]:
        conn = await connect(settings.require("DATABASE_URL"), opts.timeout)
        try:
            out: dict[str, Any] = {"now": await conn.fetchval("SELECT extract(epoch FROM now())::float8")}
            for key, query in SYNC_EVIDENCE_QUERIES.items():
                args = (float(opts.since_seconds), bucket) if key == "buckets" else (float(opts.since_seconds),)
                out[key] = [dict(r) for r in await conn.fetch(query, *args, timeout=opts.timeout * 2)]
            return out
        finally:
            await conn.close(timeout=opts.timeout)

    data = _database(settings, opts, lambda: asyncio.run(fetch()))
    for row in data["failed"]:
        row["error"] = redact(row.get("error") or "")
    data["bucket_seconds"] = bucket
    section.data = data
    failures = data["first_failures"]
    if failures:
        for f in failures:
            section.results.append(
                results.fail(
                    f"syncs {f['platform']} {f['error_type']}",
                    f"{f['n']} failed sync(s) on {f['platform']} ({f['error_type']}) since {_utc(f['first_at'])}, last at {_utc(f['last_at'])}",
                    details={"first_at": f["first_at"], "last_at": f["last_at"]},
                )
            )
    for r in data["retrying"]:
        section.results.append(
            results.warn(
                f"syncs {r['platform']} retrying",
                f"{r['n']} sync(s) on {r['platform']} retrying ({r['error_types']}) since {_utc(r['first_at'])}",
                details={"first_at": r["first_at"]},
            )
        )
    if not failures and not data["retrying"]:
        section.results.append(results.ok("syncs", f"no failed or retrying sync in the last {opts.since_text}"))
    lines = [
        f"{_utc(r['created_at'])}  {r['platform'] or '?':<12} {r['operation_type']:<20} {r['error_type'] or '-':<22} retry {r['retry_count'] or 0}  "
        f"task {r['task_id']}  connection {r['connection_id']}\n    {r['error']}"
        for r in data["failed"]
    ]
    section.evidence["evidence/failed-sync-logs.txt"] = (
        f"# the last {RECENT_FAILED} failed sync logs in the last {opts.since_text}, newest first\n" + "\n".join(lines) + "\n"
    )
    return section


def _worker_logs(settings, opts: Options) -> Section:
    """Excerpts of the worker's log: --worker-log files, and the container's when Docker answers."""
    from pmsops.host.logs import log_results, scan_logs

    section = Section("worker-logs", "worker log excerpts")
    excerpts: list[str] = []
    for path in opts.worker_logs:

        def one(path: str = path) -> list[Result]:
            from pmsops.host.check import Targets

            text = _tail(Path(path), LOG_TAIL_LINES)
            excerpts.append(f"## {path} (last {LOG_TAIL_LINES} lines)\n{redact(text)}")
            # the hints name the worker's container (docker logs, host networks …), never the log file
            found = log_results(scan_logs(text), Targets().worker, opts.since_text)
            for r in found:
                r.name = f"{Path(path).name}: {r.name}"
            return found

        section.results += results.run_check(f"logs {path}", one)
    reachable, why = docker_reachable(opts.timeout) if opts.docker else (False, "--no-docker")
    if reachable:
        from pmsops.host.check import Targets
        from pmsops.host.docker import container_logs
        from pmsops.host.logs import check_logs

        target = Targets().worker
        section.results += results.run_check(
            "logs container", lambda: check_logs(target, opts.since_text, timeout=opts.timeout * 3, with_state=False)
        )

        def container() -> Result:
            text = container_logs(target, since=opts.since_text, tail=LOG_TAIL_LINES, timeout=opts.timeout * 3)
            excerpts.append(f"## docker logs {target} --since {opts.since_text} --tail {LOG_TAIL_LINES}\n{redact(text)}")
            return results.ok("logs excerpt", f"{len(text.splitlines())} lines from {target}")

        section.results += results.run_check("logs excerpt", container)
    if not section.results:
        section.results = [results.skip("logs", f"no worker log: pass --worker-log PATH, or run where Docker answers ({why})")]
    section.evidence["evidence/worker-logs.txt"] = ("\n\n".join(excerpts) if excerpts else "# no worker log excerpt\n") + "\n"
    return section


SECTIONS: list[tuple[str, Callable[[Any, Options], Section]]] = [
    ("doctor", _doctor),
    ("smoke", _smoke),
    ("host", _host),
    ("environment", _environment),
    ("versions", _versions),
    ("snapshot", _snapshot),
    ("sync-logs", _sync_logs),
    ("worker-logs", _worker_logs),
]
"""Name and function of every section; they run at once."""

LOCAL_SECTIONS = frozenset({"environment"})
"""Sections that wait on nothing outside this process (only CPU: 100 000 PBKDF2 rounds per fingerprint), so they
cannot hang: they are awaited to the end, never abandoned at the deadline. On a busy machine their CPU work can take
longer than any multiple of --timeout, and a bundle without its environment fingerprints is a bundle with a hole."""

DEADLINE = 8.0
"""The sections' one deadline, in multiples of --timeout: the slowest section's worst case (``host``: docker inspect, logs).

One deadline for all, not one each: the report waits this long for the slowest section anyway, so a shorter deadline for
another only abandoned it on a busy machine (its CPU work — imports, 100 000 PBKDF2 rounds per fingerprint — does not shrink
with --timeout), while every network wait inside a section has its own timeout."""

SECTION_MODULES = (
    "pmsops.checks.doctor",
    "pmsops.checks.celery",
    "pmsops.checks.health",
    "pmsops.checks.redis",
    "pmsops.checks.db",
    "pmsops.api.client",
    "pmsops.api.token",
    "pmsops.host.check",
    "pmsops.host.docker",
    "pmsops.host.logs",
    "pmsops.observe.snapshot",
    "pmsops.observe.top",
    "pmsops.settings",
    "asyncpg",
    "celery.app.control",
    "kombu.transport.redis",
    "redis",
)
"""What the sections import, imported before the deadline starts: imports are not a section's work, and eight threads
importing at once wait on each other's import locks."""


def _tail(path: Path, lines: int) -> str:
    from pmsops.safefile import tail_regular

    data = tail_regular(path, 256 * 1024).decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])


def run_sections(settings, opts: Options) -> list[Section]:
    """Every section at once, under one deadline; a section that fails or hangs records why."""
    import importlib

    for module in SECTION_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # the section that needs it fails alone, saying why
            continue
    boxes: list[tuple[str, dict[str, Any], threading.Thread]] = []
    started = time.monotonic()
    deadline = started + DEADLINE * opts.timeout
    for name, fn in SECTIONS:
        box: dict[str, Any] = {}

        def run(fn=fn, box=box, name=name) -> None:
            watch = time.perf_counter()
            try:
                box["section"] = fn(settings, opts)
            except Exception as exc:  # noqa: BLE001 - a section fails alone
                from pmsops.errors import PmsopsError

                message = exc.message if isinstance(exc, PmsopsError) else f"{type(exc).__name__}: {exc}"
                box["section"] = Section(name, name, error=redact(message))
            box["section"].duration_ms = (time.perf_counter() - watch) * 1000

        thread = threading.Thread(target=run, name=f"report-{name}", daemon=True)
        thread.start()
        boxes.append((name, box, thread))
    out = []
    for name, box, thread in boxes:
        thread.join(None if name in LOCAL_SECTIONS else max(0.0, deadline - time.monotonic()))
        section = box.get("section") or Section(name, name, error=f"no answer within {deadline - started:.0f} s (section abandoned)")
        if not section.results and section.error:
            section.results = [results.fail(name, section.error)]
        out.append(section)
    return out


def _utc(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch))) if epoch else "—"


def _results_text(title: str, items: list[Result]) -> str:
    symbols = {Status.OK: "ok  ", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "skip"}
    lines = [f"# {title}"]
    for r in items:
        lines.append(f"{symbols[r.status]} {r.name}: {r.summary}" + (f"  ({r.duration_ms:.0f} ms)" if r.duration_ms is not None else ""))
        lines += [f"       {note}" for note in r.notes]
        if r.hint and r.status is not Status.OK:
            lines.append(f"       → {r.hint}")
    return redact("\n".join(lines) + "\n")
