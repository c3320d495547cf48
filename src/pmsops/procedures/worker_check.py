"""``worker-check``: one command for ``docker exec pms-worker-v2 pmsops worker-check``
and for a Docker ``HEALTHCHECK``.

User (not root, has a passwd entry) → environment (names only) → time-zone data →
the three Redis URLs agree → database: DNS + TCP + login + ``SELECT 1`` (no prepared
statement, so a transaction pooler is fine) → Redis: DNS + TCP → broker answers →
this container's worker answers a ping addressed to it → expected tasks registered →
optional code hash. Each step is a Result; the whole run takes milliseconds plus
the ping round trip, because the ping returns as soon as the worker answers.

``--liveness`` (:func:`liveness_check`) is the cheap HEALTHCHECK mode: it reads the
beacon the worker keeps fresh (:mod:`pmsops.beacon`) and imports none of
celery, kombu, redis-py or asyncpg.
"""

from __future__ import annotations

from typing import Mapping

import os
import pwd
import socket

from pmsops import results
from pmsops.errors import UsageError
from pmsops.results import Result, Stopwatch, run_check
from pmsops.settings import REDIS_URL_VARIABLES, WORKER_RECOMMENDED_VARIABLES, WORKER_REQUIRED_VARIABLES, Settings


def check_user(allow_root: bool = False) -> Result:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return results.fail(
            "user", f"uid {uid} has no passwd entry", hint="create the user in the image (useradd -u UID appuser): tools like ps and celery need it"
        )
    if uid == 0:
        make = results.warn if allow_root else results.fail
        return make(
            "user",
            "running as root (effective UID 0)",
            hint="Celery's SecurityWarning: run the worker as a non-root user (USER appuser in Dockerfile.worker); "
            "this step passes for any non-root user with a passwd entry",
        )
    return results.ok("user", f"{name} (uid {uid}): not root, has a passwd entry")


def check_timezone() -> Result:
    from pmsops.worker.start import TZDATA_HINT, timezone_problem

    problem = timezone_problem()
    if problem:
        return results.fail("timezone", problem, hint=TZDATA_HINT)
    return results.ok("timezone", "time-zone data found (UTC loads)")


def check_environment(settings: Settings) -> Result:
    missing = [n for n in WORKER_REQUIRED_VARIABLES if not settings.env.get(n)]
    optional = [n for n in WORKER_RECOMMENDED_VARIABLES if not settings.env.get(n)]
    present = [n for n in WORKER_REQUIRED_VARIABLES if settings.env.get(n)]
    notes = [f"set: {', '.join(present)}"] if present else []
    if optional:
        notes.append(f"not set (recommended): {', '.join(optional)}")
    if missing:
        return results.fail(
            "environment",
            f"missing: {', '.join(missing)}",
            notes=notes,
            hint="copy ALL variables from pms-backend to the worker (pmsops host env-diff pms-backend pms-worker-v2)",
        )
    if optional:
        return results.warn("environment", f"all {len(WORKER_REQUIRED_VARIABLES)} required variables set", notes=notes)
    return results.ok("environment", f"all {len(WORKER_REQUIRED_VARIABLES)} required variables set", notes=notes)


def check_sync_config(settings: Settings) -> Result:
    """The sync settings parse, and no retry countdown can outlast the broker's visibility timeout."""
    from pmsops.sync.config import ConfigError, SyncSettings

    try:
        sync = SyncSettings.from_env(settings.env)
    except ConfigError as exc:
        return results.fail("sync-config", exc.message, hint="fix the variable; the worker refuses to start with it (exit 2)")
    problems = sync.invariant_violations()
    if problems:
        return results.fail("sync-config", problems[0], hint="raise CELERY_VISIBILITY_TIMEOUT, or lower SYNC_RETRY_BACKOFF_MAX / CELERY_TIME_LIMIT")
    return results.ok(
        "sync-config",
        f"visibility timeout {sync.visibility_timeout:g} s > hard time limit {sync.hard_time_limit:g} s + longest countdown {sync.max_countdown:g} s",
    )


def check_redis_agreement(settings: Settings) -> Result:
    from pmsops.checks.urls import check_redis_urls

    try:
        found = check_redis_urls(settings)
    except UsageError as exc:
        return results.fail("redis-urls", exc.message, hint=exc.hint)
    bad = [r for r in found if r.status == "fail"]
    if bad:
        return results.fail(
            "redis-urls", "; ".join(f"{r.name}: {r.summary}" for r in bad), notes=[n for r in bad for n in r.notes], hint="pmsops redis-url check"
        )
    return results.ok("redis-urls", found[-1].summary)


def check_network(settings: Settings, timeout: float) -> list[Result]:
    from pmsops.worker.deps import probe
    from pmsops.worker.wait import dependencies_from

    out = []
    for dep in dependencies_from(settings.env):
        name = "network db" if dep.kind == "postgres" else "network redis"
        # Redis credentials are the broker step's; the database's are checked here (login + SELECT 1):
        # a worker with a wrong database password must not report healthy.
        with_login = dep.kind == "postgres" and dep.url is not None
        watch = Stopwatch()
        reach = probe(dep if with_login else type(dep)(dep.name, dep.kind, dep.host, dep.port, None), timeout)
        if reach.ready:
            found = results.ok(name, f"{dep.where}: DNS + TCP + login + SELECT 1 ok" if with_login else f"{dep.where}: DNS + TCP ok")
        elif reach.stage == "protocol":
            found = results.fail(
                name, f"{dep.where}: {reach.message}", hint="check DATABASE_URL's user, password and database name (pmsops check db)"
            )
        elif reach.refused:  # the name resolved and the host answered: it is on the network, nothing listens there
            what = "PostgreSQL" if dep.kind == "postgres" else "Redis"
            found = results.fail(
                name,
                f"{dep.where}: {reach.message}",
                hint=f"{what} is not running or not listening on that port: check the container (docker ps) and the port in the URL",
            )
        else:
            found = results.fail(
                name,
                f"{dep.where}: {reach.message}",
                hint="attach the worker to the coolify and Supabase networks (pmsops host networks pms-worker-v2)",
            )
        found.duration_ms = watch.ms
        out.append(found)
    return out


def check_broker(broker_url: str, timeout: float, variable: str = "CELERY_BROKER_URL") -> Result:
    from pmsops.checks.redis import check_redis

    found = check_redis(broker_url, timeout, name="broker", variable=variable)
    if found.status == "ok":
        found.summary = found.summary.split(": ", 1)[0] + ": reachable, PING ok"
    return found


def check_code(expectations: list[str]) -> list[Result]:
    out = []
    for item in expectations:
        path, sep, expected = item.partition("=")
        if not sep or len(expected) < 8:
            raise UsageError(f"--expect-sha256 takes PATH=HEX, got {item!r}")
        try:
            from pmsops.safefile import sha256_regular

            actual = sha256_regular(path)  # a FIFO or device is refused, not hashed forever
        except OSError as exc:
            out.append(results.fail(f"code {path}", f"cannot read: {exc.strerror}"))
            continue
        except UsageError as exc:
            out.append(results.fail(f"code {path}", f"cannot hash: {exc.message}"))
            continue
        if actual.startswith(expected.lower()):
            out.append(results.ok(f"code {path}", f"sha256 {actual[:16]} as expected"))
        else:
            out.append(
                results.fail(
                    f"code {path}",
                    f"sha256 {actual[:16]}, expected {expected[:16]}",
                    hint="stale code: redeploy with 'Disable build cache' and a pinned commit (Stale Code After Deployment)",
                )
            )
    return out


def worker_check(
    settings: Settings,
    expect_tasks: list[str] | None = None,
    destination: str | None = None,
    allow_root: bool = False,
    expect_sha256: list[str] | None = None,
    timeout: float = 3.0,
) -> list[Result]:
    from pmsops.checks import celery as celery_check
    from pmsops.checks.doctor import input_errors
    from pmsops.sync import TASK_NAMES

    bad = input_errors(settings, broker_clients=("kombu", "redis-py"))  # each bad URL variable: one failed result (#24, #28)
    readable = Settings({k: v for k, v in settings.env.items() if k not in bad})
    out = [check_user(allow_root), check_environment(settings), check_sync_config(settings)]
    out += [results.fail(f"url {variable}", exc.message, hint=exc.hint) for variable, exc in sorted(bad.items())]
    if any(variable in REDIS_URL_VARIABLES for variable in bad):
        out.append(results.skip("redis-urls", "skipped: a Redis URL cannot be read as its client reads it (above)"))
    else:
        out.append(check_redis_agreement(settings))
    out += run_check("network", lambda: check_network(readable, timeout))
    out[2:2] = run_check("timezone", check_timezone)  # after environment; Celery cannot start without zone data
    broker_variable = "CELERY_BROKER_URL" if settings.env.get("CELERY_BROKER_URL") else "REDIS_URL"
    if broker_variable in bad:
        out += [results.skip(n, f"skipped: {broker_variable} cannot be read (above)") for n in ("broker", "ping", "registered")]
        return out + check_code(expect_sha256 or [])
    broker = settings.get("CELERY_BROKER_URL")
    if not broker:
        out.append(results.fail("broker", "CELERY_BROKER_URL (or REDIS_URL) not set"))
        return out + check_code(expect_sha256 or [])
    out += run_check("broker", lambda: check_broker(broker, timeout))
    me = destination or f"celery@{socket.gethostname()}"
    out += run_check("ping", lambda: celery_check.ping(broker, timeout, destination=[me], name="ping"))
    tasks = list(expect_tasks) if expect_tasks else list(TASK_NAMES)
    if out[-1].status == "ok":
        out += run_check("registered", lambda: celery_check.registered(broker, timeout, tasks, destination=[me], name="registered"))
    else:
        out.append(results.skip("registered", "skipped: the worker did not answer"))
    return out + check_code(expect_sha256 or [])


def liveness_check(env: Mapping[str, str], max_age: float | None = None, node: str | None = None) -> list[Result]:
    """The HEALTHCHECK mode: is the beacon of worker ``node`` (default ``celery@<hostname>``) fresh? No broker, no Celery import."""
    from pmsops.beacon import beacon_interval, beacon_path, read_liveness

    watch = Stopwatch()
    interval = beacon_interval(env)
    limit = max_age if max_age is not None else 3 * (interval or 10.0)
    found = read_liveness(beacon_path(env, node=node), limit)
    result = (results.ok if found.alive else results.fail)("liveness", found.summary, hint=found.hint)
    result.duration_ms = watch.ms
    return [result]
