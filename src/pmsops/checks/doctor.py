"""``doctor``: every configured check at once, each bounded by its own timeout.

Order is fixed (URLs, Redis, database, Celery, API) whatever finishes first, so
output is comparable between runs; total time is the slowest check, not the sum.
Unconfigured checks are ``skip`` results naming the variable to set.
"""

from __future__ import annotations

import time

from pmsops import results
from pmsops.runner import Job, check_deadline, run_concurrently
from pmsops.errors import UsageError
from pmsops.results import Collector, Result
from pmsops.settings import REDIS_URL_VARIABLES, Settings


def _url_results(settings: Settings) -> list[Result]:
    from pmsops.checks.urls import check_redis_urls

    if not any(settings.env.get(n) for n in REDIS_URL_VARIABLES):
        return [results.skip("redis-url", "no Redis URL configured", hint="set REDIS_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND")]
    try:
        found = check_redis_urls(settings)
    except UsageError as exc:
        return [results.fail("redis-url", exc.message, hint=exc.hint)]
    for result in found:
        result.name = f"redis-url {result.name}"
    return found


def plan(settings: Settings, timeout: float, expect_workers: int | None = None, started: float | None = None) -> list[Job | Result]:
    """The jobs to run, or a skip result where the configuration is missing.

    With ``started`` (a time.monotonic() value), each check gets what is left of
    ``timeout`` since then, after importing its client library: the whole doctor
    then ends within its timeout of being launched, start-up included.
    """

    def budget(*modules: str) -> float:
        import importlib

        for module in modules:
            importlib.import_module(module)
        if started is None:
            return timeout
        return max(0.2, round(timeout - (time.monotonic() - started), 1))  # "within 2.8 s", not "within 2.78306 s"

    from pmsops.checks import celery as celery_check
    from pmsops.checks.db import check_db
    from pmsops.checks.health import check_health
    from pmsops.checks.redis import check_redis

    redis_url = settings.get("REDIS_URL")
    database_url = settings.get("DATABASE_URL")
    broker_url = settings.get("CELERY_BROKER_URL")
    api_url = settings.get("PMS_API_URL")
    bad = input_errors(settings)
    broker_variable = "CELERY_BROKER_URL" if settings.env.get("CELERY_BROKER_URL") else "REDIS_URL"
    needs = {"redis": "REDIS_URL", "db": "DATABASE_URL", "celery": broker_variable}
    planned: list[Job | Result] = [
        Job("redis", lambda: check_redis(redis_url, budget("redis")), timeout)
        if redis_url
        else results.skip("redis", "not configured", hint="set REDIS_URL"),
        Job("db", lambda: check_db(database_url, budget("asyncpg"), env=settings.env), timeout)
        if database_url
        else results.skip("db", "not configured", hint="set DATABASE_URL"),
        Job("celery", lambda: celery_check.ping(broker_url, budget("redis", "celery"), expect=expect_workers), timeout * 2)
        if broker_url
        else results.skip("celery", "not configured", hint="set CELERY_BROKER_URL (or REDIS_URL)"),
        Job("health", lambda: check_health(api_url, budget("httpx")), check_deadline("health", timeout))
        if api_url
        else results.skip("health", "not configured", hint="set PMS_API_URL (or API, API_BASE_URL, BACKEND_URL)"),
    ]
    return [_bad_input(item.name, needs[item.name], bad[needs[item.name]]) if _needs_bad(item, needs, bad) else item for item in planned]


def _needs_bad(item: Job | Result, needs: dict[str, str], bad: dict[str, UsageError]) -> bool:
    return isinstance(item, Job) and item.name in needs and needs[item.name] in bad


def input_errors(settings: Settings, broker_clients: tuple[str, ...] = ("kombu",)) -> dict[str, UsageError]:
    """Each client URL read by its client; the variables a client would misread, with why. Not raised: a multi-check
    command shows each as one failed result and still runs every check that does not need it (#24, #28)."""
    from pmsops.urlread import environment_pairs, read_url

    errors: dict[str, UsageError] = {}
    for variable, url, client in environment_pairs(settings.env, broker_clients):
        if url and variable not in errors:
            try:
                read_url(url, client, variable)
            except UsageError as exc:
                errors[variable] = exc
    return errors


def _bad_input(name: str, variable: str, exc: UsageError) -> Result:
    if variable in REDIS_URL_VARIABLES:  # the redis-url result already failed naming it: said once, not three times
        return results.skip(name, f"skipped: {variable} cannot be read as its client reads it (redis-url above says why)")
    message = exc.message if exc.message.startswith(variable) else f"{variable}: {exc.message}"
    how = "pmsops check db reads it alone" if variable == "DATABASE_URL" else "pmsops redis-url check shows how each client reads it"
    return results.fail(name, message, hint=exc.hint or f"fix {variable} ({how}); the checks that do not need it ran")


SLOTS = ("redis-url", "redis", "db", "celery", "health")
"""doctor's checks in their fixed order (the order results are shown in)."""


def run_doctor(
    settings: Settings, timeout: float = 3.0, expect_workers: int | None = None, started: float | None = None, collector: Collector | None = None
) -> list[Result]:
    """URL lint first (offline, instant), then all live checks concurrently.

    With a ``collector`` every check's result is released the moment it and the
    checks before it are known (see :class:`pmsops.results.Collector`).
    """
    collector = collector or Collector(SLOTS)
    collector.start("redis-url")
    collector.finish("redis-url", _url_results(settings))
    planned = plan(settings, timeout, expect_workers, started)
    for item in planned:
        if isinstance(item, Result):
            collector.finish(item.name, [item])
    run_concurrently([p for p in planned if isinstance(p, Job)], collector)
    return collector.results
