"""``celery ping|registered|active|stats`` using only the broker URL.

We never import the application (a broken app must not break its diagnosis):
a bare ``Celery(broker=URL)`` speaks the same remote-control protocol.

``celery inspect ping -t 3`` always waits the full timeout, because it cannot
know how many workers exist. On a Redis broker we can: every worker binds its
``<hostname>.celery.pidbox`` queue to the ``celery.pidbox`` fanout exchange, and
kombu keeps those bindings in the set ``_kombu.binding.celery.pidbox``. So we
broadcast with ``limit`` = the number of bound workers (or ``--expect N``) and
return as soon as that many have answered. A binding whose worker was killed
stays behind: then we wait the full timeout and say so.

After the broadcast we delete our reply queue and its binding, which kombu's
Redis transport would otherwise leave in Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pmsops import results
from pmsops.failures import classify
from pmsops.results import Result
from pmsops.errors import UsageError
from pmsops.urlread import mask_url, read_url

PIDBOX_BINDINGS = "_kombu.binding.celery.pidbox"
REPLY_BINDINGS = "_kombu.binding.reply.celery.pidbox"
STUCK_AFTER_SECONDS = 300.0

NO_WORKER_HINT = (
    "no worker answered: (1) the worker is not running (docker ps | grep worker; look for 'ready' in its logs); "
    "(2) wrong start command (pmsops host worker-cmd); (3) the worker cannot reach Redis or uses another "
    "CELERY_BROKER_URL (pmsops host env-diff pms-backend pms-worker-v2); (4) missing environment variables"
)


@dataclass
class Broadcast:
    """What one remote-control broadcast brought back."""

    command: str
    replies: dict[str, Any] = field(default_factory=dict)
    bound_workers: list[str] = field(default_factory=list)
    waited_ms: float = 0.0
    limit: int | None = None
    unreadable: dict[str, str] = field(default_factory=dict)
    """Workers whose reply is not the shape of an answer to the command (broker data is outside data): why, by worker.
    They are left out of ``replies``, so every reader sees only well-formed answers, and each check names them."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _stats_problem(reply: dict) -> str | None:
    pool = {} if reply.get("pool") is None else reply["pool"]
    total = {} if reply.get("total") is None else reply["total"]
    if not isinstance(pool, dict) or not isinstance(total, dict):
        return "its pool or totals are not objects"
    if not all(isinstance(k, str) and _number(v) for k, v in total.items()):
        return "its task totals are not numbers"
    if not _text_or_none(pool.get("implementation")) or not (pool.get("max-concurrency") is None or _number(pool.get("max-concurrency"))):
        return "its pool is not a name and a number"
    wrong = [k for k in ("pid", "uptime", "prefetch_count") if reply.get(k) is not None and not _number(reply.get(k))]
    return f"{', '.join(wrong)} not a number" if wrong else None


def _active_problem(reply: list) -> str | None:
    for task in reply:
        if not isinstance(task, dict):
            return "a task that is not an object"
        if not (_text_or_none(task.get("id")) and _text_or_none(task.get("name"))):
            return "a task whose id or name is not text"
        if task.get("time_start") is not None and not _number(task.get("time_start")):
            return "a task whose start time is not a number"
    return None


def reply_problem(command: str, reply: Any) -> str | None:
    """Why ``reply`` cannot be read as a worker's answer to ``command`` (None: it can)."""
    expected = dict if command in ("ping", "stats") else list
    if not isinstance(reply, expected):
        return f"a {type(reply).__name__}, not {'an object' if expected is dict else 'a list'}"
    if command == "stats":
        return _stats_problem(reply)
    if command == "active":
        return _active_problem(reply)
    if command == "registered" and not all(isinstance(t, str) for t in reply):
        return "task names that are not text"
    return None


def _well_formed(command: str, replies: Any) -> tuple[dict[str, Any], dict[str, str]]:
    if not isinstance(replies, dict):
        return {}, {"?": f"the replies are a {type(replies).__name__}, not an object"}
    good, bad = {}, {}
    for worker, reply in replies.items():
        problem = reply_problem(command, reply)
        if problem is None:
            good[str(worker)] = reply
        else:
            bad[str(worker)] = problem
    return good, bad


def bound_workers(url: str, timeout: float) -> list[str] | None:
    """Worker host names bound to the pidbox exchange (Redis brokers only; None if unknown).

    Celery's socket broker (``redis+socket://``) is asked on its socket, like a TCP one.
    """
    from pmsops.checks.redis import SOCKET_SCHEMES, client_for, scheme_of

    scheme = scheme_of(url)
    if scheme not in ("redis", "rediss") + SOCKET_SCHEMES:
        return None
    if scheme not in SOCKET_SCHEMES:
        try:
            read_url(url, "redis-py", "CELERY_BROKER_URL")
        except UsageError:
            return None  # kombu reads it, redis-py would not: no binding count, wait the full timeout

    client = client_for(url, timeout)
    try:
        members = client.smembers(PIDBOX_BINDINGS)
    finally:
        client.close()
    names = set()
    for member in members:
        queue = member.decode(errors="replace").split("\x06\x16")[-1]
        if queue.endswith(".celery.pidbox"):
            names.add(queue[: -len(".celery.pidbox")])
    return sorted(names)


def _app(url: str, timeout: float):
    from celery import Celery

    app = Celery("pmsops-inspect", broker=url, set_as_current=False)
    app.conf.update(
        broker_connection_timeout=timeout,
        broker_connection_retry=False,
        broker_connection_max_retries=0,
        broker_transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_retries": 0},
        accept_content=["json"],
        result_backend=None,
    )
    return app


def _cleanup_reply_queue(app, mailbox) -> None:
    """Delete our reply queue and its binding, so broadcasts leave nothing in Redis."""
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            channel.queue_delete(mailbox.reply_queue.name)
    except Exception:  # noqa: BLE001 - cleanup is best effort, never the failure we report
        pass


def broadcast(url: str, command: str, timeout: float = 3.0, destination: list[str] | None = None, expect: int | None = None) -> Broadcast:
    """Send one inspect command; return early once the expected number of workers replied.

    The URL is read by kombu's own parser first: one it would misread raises
    :class:`UsageError` before kombu, Celery or redis-py see it.
    """
    read_url(url, "kombu", "CELERY_BROKER_URL")
    bound = bound_workers(url, timeout)
    limit: int | None
    if destination:
        limit = len(destination)
    elif bound:
        limit = max(len(bound), expect or 0)
    else:
        limit = expect
    started = time.perf_counter()
    try:
        replies = _inspect(url, timeout, command, destination, limit)
    except Exception as exc:  # noqa: BLE001 - only a stale pooled connection is retried; anything else goes on up
        if not _stale_connection(exc):
            raise
        # kombu pools producer connections per process (kombu.pools): a broker restart leaves this long-running
        # process (top, the exporter) a connection to the old server. Drop the pools and ask once more.
        import kombu.pools

        kombu.pools.reset()
        replies = _inspect(url, timeout, command, destination, limit)
    waited = (time.perf_counter() - started) * 1000
    replies, unreadable = _well_formed(command, replies)
    return Broadcast(command, replies, bound or [], waited, limit, unreadable)


def _inspect(url: str, timeout: float, command: str, destination: list[str] | None, limit: int | None) -> dict:
    app = _app(url, timeout)
    try:
        inspector = app.control.inspect(timeout=timeout, destination=destination, limit=limit)
        return getattr(inspector, command)() or {}
    finally:
        _cleanup_reply_queue(app, app.control.mailbox)
        app.close()


def _stale_connection(exc: BaseException) -> bool:
    """A connection the server closed under us (its restart), as redis-py reports it: not a broker that is down."""
    import redis

    return isinstance(exc, redis.exceptions.ConnectionError) and "closed by server" in str(exc).lower()


def broker_where(url: str) -> str:
    """The masked broker URL and the address kombu really connects to."""
    return f"{mask_url(url)} at {read_url(url, 'kombu', 'CELERY_BROKER_URL').where}"


def _broker_failure(name: str, url: str, exc: BaseException, timeout: float) -> Result:
    from pmsops.checks.redis import auth_failure, auth_hint, tls_failure

    masked = broker_where(url)
    words = auth_failure(exc)
    if words:
        return results.fail(name, f"broker {masked}: {words}", hint=auth_hint(url))
    reading = read_url(url, "kombu", "CELERY_BROKER_URL")
    tls = tls_failure(url, reading, exc, timeout)
    if tls:
        return results.fail(name, f"broker {masked}: {tls[1]}", hint=tls[2], details={"error": tls[0]})
    host, port = reading.address.endpoint
    failure = classify(exc, host, port, timeout, "the Redis broker")
    return results.fail(name, f"broker {masked}: {failure.summary}", hint=failure.hint, details={"error": failure.kind})


def _count_verdict(name: str, found: list[str], expect: int | None, summary: str, details: dict, notes: list[str]) -> Result:
    count = len(found)
    if count == 0:
        return results.fail(name, "no worker answered" + summary, hint=NO_WORKER_HINT, details=details, notes=notes)
    if expect is not None and count > expect:
        return results.fail(
            name,
            f"{count} workers answered, expected {expect}" + summary,
            hint="duplicate workers run every sync twice: stop the extra worker (docker ps | grep worker)",
            details=details,
            notes=notes,
        )
    if expect is not None and count < expect:
        return results.fail(name, f"only {count} of {expect} expected workers answered" + summary, hint=NO_WORKER_HINT, details=details, notes=notes)
    return results.ok(name, f"{count} worker{'s' if count != 1 else ''} answered" + summary, details=details, notes=notes)


def _unreadable_notes(got: Broadcast) -> list[str]:
    return [f"{worker}: unreadable {got.command} reply ({why}): left out" for worker, why in sorted(got.unreadable.items())]


def _flag_unreadable(result: Result, got: Broadcast) -> Result:
    """A reply that is not an answer is said (a forged or broken worker on the broker), never a crash or a silent drop."""
    if got.unreadable:
        result.notes = list(result.notes) + _unreadable_notes(got)
        if isinstance(result.details, dict):
            result.details["unreadable"] = dict(got.unreadable)
        if result.status == "ok":
            result.status = results.Status.WARN
            result.summary += f"; {len(got.unreadable)} unreadable reply(ies) left out"
    return result


def ping(url: str, timeout: float = 3.0, expect: int | None = None, destination: list[str] | None = None, name: str = "celery") -> Result:
    """Which workers answer a ping, and is that the number we expect?"""
    try:
        got = broadcast(url, "ping", timeout, destination, expect)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - broker errors become a named failure
        return _broker_failure(name, url, exc, timeout)
    workers = sorted(got.replies)
    notes = [f"{w}: pong" for w in workers] + [f"broker: {broker_where(url)}"]
    stale = sorted(set(got.bound_workers) - set(workers)) if not destination else []
    if stale:
        notes.append(f"bound in Redis but silent (stale binding of a stopped or killed worker?): {', '.join(stale)}")
    if destination:
        missing = sorted(set(destination) - set(workers))
        if missing:
            notes.append(f"no answer from {', '.join(missing)}")
    details = {
        "workers": workers,
        "bound_workers": got.bound_workers,
        "waited_ms": round(got.waited_ms, 1),
        "broker": mask_url(url),
        "broker_address": str(read_url(url, "kombu", "CELERY_BROKER_URL").address),
    }
    summary = f" in {got.waited_ms:.0f} ms: {', '.join(workers)}" if workers else f" within {timeout:g} s"
    verdict = _count_verdict(name, workers, expect if not destination else len(destination), summary, details, notes)
    others = sorted(set(got.bound_workers) - set(destination or ()) - set(workers)) if destination else []
    if verdict.status == "fail" and others:
        # the default name (celery@<this hostname>) is not the worker's: it was started with --hostname
        verdict.summary += f" (workers on this broker: {', '.join(others)})"
        verdict.hint = f"the worker has another name: pass it with -d {others[0]}"
    return _flag_unreadable(
        verdict,
        got,
    )


def registered(
    url: str,
    timeout: float = 3.0,
    expect_tasks: list[str] | None = None,
    destination: list[str] | None = None,
    expect: int | None = None,
    name: str = "celery-registered",
) -> Result:
    """Which tasks each worker registered; every ``expect_tasks`` name must be there."""
    try:
        got = broadcast(url, "registered", timeout, destination, expect)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        return _broker_failure(name, url, exc, timeout)
    notes, missing_any = [], []
    for worker, tasks in sorted(got.replies.items()):
        names = sorted(t.split(" ")[0] for t in tasks)
        missing = [t for t in expect_tasks or [] if t not in names]
        missing_any += [f"{worker}: {t}" for t in missing]
        notes.append(f"{worker}: {len(names)} tasks" + (f", missing {', '.join(missing)}" if missing else ""))
        notes += [f"  - {t}" for t in names]
    details = {"workers": {w: sorted(t.split(" ")[0] for t in ts) for w, ts in got.replies.items()}, "expected_tasks": expect_tasks or []}
    if not got.replies:
        return _flag_unreadable(
            results.fail(name, f"no worker answered within {timeout:g} s", hint=NO_WORKER_HINT, details=details),
            got,
        )
    if missing_any:
        return _flag_unreadable(
            results.fail(
                name,
                f"expected task(s) not registered on {len({m.split(':')[0] for m in missing_any})} worker(s)",
                notes=notes,
                details=details,
                hint=(
                    "the worker runs another app or old code: check the start command (-A …:celery_app) and the code version (pmsops host code-hash)"
                ),
            ),
            got,
        )
    return _flag_unreadable(
        _count_verdict(name, sorted(got.replies), expect, "", details, notes),
        got,
    )


def active(
    url: str,
    timeout: float = 3.0,
    stuck_after: float = STUCK_AFTER_SECONDS,
    destination: list[str] | None = None,
    expect: int | None = None,
    name: str = "celery-active",
) -> Result:
    """Running tasks with their age; a task older than ``stuck_after`` seconds is flagged."""
    try:
        got = broadcast(url, "active", timeout, destination, expect)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        return _broker_failure(name, url, exc, timeout)
    now = time.time()
    notes, stuck, rows = [], [], []
    for worker, tasks in sorted(got.replies.items()):
        for task in tasks:
            started = task.get("time_start")
            age = now - started if started else None
            row = {"worker": worker, "id": task.get("id"), "name": task.get("name"), "age_s": round(age, 1) if age is not None else None}
            rows.append(row)
            flag = age is not None and age > stuck_after
            if flag:
                stuck.append(row)
            notes.append(
                f"{worker}: {row['name']}[{row['id']}] running for {age:.0f} s" + ("  ← stuck?" if flag else "")
                if age is not None
                else f"{worker}: {row['name']}[{row['id']}] (no start time)"
            )
    details = {"workers": sorted(got.replies), "tasks": rows, "stuck_after_s": stuck_after}
    if not got.replies:
        return _flag_unreadable(
            results.fail(name, f"no worker answered within {timeout:g} s", hint=NO_WORKER_HINT, details=details),
            got,
        )
    if stuck:
        return _flag_unreadable(
            results.fail(
                name,
                f"{len(stuck)} task(s) running longer than {stuck_after:g} s",
                notes=notes,
                details=details,
                hint=(
                    "a hanging task holds a worker slot and its sync log stays 'running': check CELERY_TIME_LIMIT and the platform's responsiveness;"
                    " pmsops sync reap marks stale logs failed"
                ),
            ),
            got,
        )
    summary = f"{len(rows)} task(s) running on {len(got.replies)} worker(s)"
    return _flag_unreadable(
        results.ok(name, summary, notes=notes, details=details),
        got,
    )


def stats(url: str, timeout: float = 3.0, destination: list[str] | None = None, expect: int | None = None, name: str = "celery-stats") -> Result:
    """Pool, concurrency, processed-task counts and uptime of every worker."""
    try:
        got = broadcast(url, "stats", timeout, destination, expect)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        return _broker_failure(name, url, exc, timeout)
    notes, details = [], {}
    for worker, info in sorted(got.replies.items()):
        pool = info.get("pool", {})
        total = sum((info.get("total") or {}).values())
        line = (
            f"{worker}: pid {info.get('pid')}, pool {pool.get('implementation', '?').split(':')[-1]} x{pool.get('max-concurrency', '?')}, {total}"
            f" tasks processed, up {info.get('uptime', 0)} s"
        )
        notes.append(line)
        details[worker] = {
            "pid": info.get("pid"),
            "uptime_s": info.get("uptime"),
            "total": info.get("total"),
            "pool": pool.get("implementation"),
            "concurrency": pool.get("max-concurrency"),
            "prefetch_count": info.get("prefetch_count"),
        }
    return _flag_unreadable(
        _count_verdict(name, sorted(got.replies), expect, "", {"workers": details}, notes),
        got,
    )
