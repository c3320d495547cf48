"""Live checks: ``check redis|db|health``, ``celery ping|registered|active|stats``, ``doctor``."""

from __future__ import annotations

from typing import List, Optional

import typer

from pmsops.cli.common import JSON_OPTION, JUNIT_OPTION, QUIET_OPTION, STRICT_OPTION, TIMEOUT_OPTION, check_one, finite, settings, state, stream

check_app = typer.Typer(help="Check one dependency: Redis, the database, or the API's /health/ready.", no_args_is_help=True)
celery_app = typer.Typer(help="Ask Celery workers over the broker (never imports the application).", no_args_is_help=True)
PANEL = "Live checks (runbook: Verification, Troubleshooting)"

URL_HELP = "Default: from the environment."
EXPECT_OPTION = typer.Option(None, "--expect", min=0, help="Number of workers that must answer (production runs exactly 1).")
DEST_OPTION = typer.Option(None, "--destination", "-d", help="Ask only this worker (celery@host); repeatable.")


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check", rich_help_panel=PANEL)
    app.add_typer(celery_app, name="celery", rich_help_panel=PANEL)
    app.command("doctor", rich_help_panel=PANEL)(doctor)


@check_app.command("redis")
def check_redis(
    url: Optional[str] = typer.Option(None, "--url", help=f"Redis URL. {URL_HELP} (REDIS_URL)"),
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """PING, server version, latency and a SET/GET round trip (runbook: Test Redis Connection)."""
    from pmsops.checks.redis import check_redis as run
    from pmsops.checks.redis import read_redis_url

    the_url = url or settings().require("REDIS_URL")
    variable = "--url" if url else "REDIS_URL"
    read_redis_url(
        the_url, variable
    )  # a URL its client (redis-py; kombu for Celery's socket URLs) would misread is bad input (exit 2), before anything is attempted
    check_one("check redis", "redis", lambda: run(the_url, timeout, variable=variable), timeout, json_mode, strict, quiet, junit)


@check_app.command("db")
def check_db(
    url: Optional[str] = typer.Option(None, "--url", help=f"PostgreSQL URL. {URL_HELP} (DATABASE_URL)"),
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Connect with asyncpg, SELECT version(), latency (runbook: Database URL Verification)."""
    from pmsops.checks.db import check_db as run
    from pmsops.checks.db import normalise_dsn

    the_url = url or settings().require("DATABASE_URL")
    normalise_dsn(the_url, "--url" if url else "DATABASE_URL")  # read by asyncpg's parser: bad input is exit 2 before anything is attempted
    check_one("check db", "db", lambda: run(the_url, timeout), timeout, json_mode, strict, quiet, junit)


@check_app.command("health")
def check_health(
    url: Optional[str] = typer.Option(None, "--url", help=f"API base URL or the /health/ready URL. {URL_HELP} (PMS_API_URL)"),
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """GET /health/ready and report each component and the workers (both response shapes)."""
    from pmsops.checks.health import check_health as run

    the_url = url or settings().require("PMS_API_URL")
    check_one("check health", "health", lambda: run(the_url, timeout), timeout, json_mode, strict, quiet, junit)


def _broker(url: Optional[str]) -> str:
    """The broker URL, read by kombu's parser first: one it would misread is bad input (exit 2)."""
    from pmsops.urlread import read_url

    found = settings()
    the_url = url or found.require("CELERY_BROKER_URL", hint="export CELERY_BROKER_URL (or REDIS_URL), or pass --broker")
    read_url(the_url, "kombu", "--broker" if url else (found.source("CELERY_BROKER_URL") or "CELERY_BROKER_URL"))
    return the_url


BROKER_OPTION = typer.Option(None, "--broker", "--url", "-b", help="Broker URL. Default: CELERY_BROKER_URL, then REDIS_URL.")


@celery_app.command("ping")
def celery_ping(
    broker: Optional[str] = BROKER_OPTION,
    expect: Optional[int] = EXPECT_OPTION,
    destination: Optional[List[str]] = DEST_OPTION,
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Which workers answer, returning as soon as they all have (unlike celery inspect ping)."""
    from pmsops.checks.celery import ping

    url = _broker(broker)
    check_one("celery ping", "celery", lambda: ping(url, timeout, expect, destination or None), timeout * 2, json_mode, strict, quiet, junit)


@celery_app.command("registered")
def celery_registered(
    broker: Optional[str] = BROKER_OPTION,
    expect_task: Optional[List[str]] = typer.Option(None, "--expect-task", help="A task name that must be registered; repeatable."),
    expect: Optional[int] = EXPECT_OPTION,
    destination: Optional[List[str]] = DEST_OPTION,
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Registered tasks per worker (runbook: Check Active Workers and Registered Tasks)."""
    from pmsops.checks.celery import registered

    url = _broker(broker)
    check_one(
        "celery registered",
        "celery-registered",
        lambda: registered(url, timeout, expect_task or [], destination or None, expect),
        timeout * 2,
        json_mode,
        strict,
        quiet,
        junit,
    )


@celery_app.command("active")
def celery_active(
    broker: Optional[str] = BROKER_OPTION,
    stuck_after: float = typer.Option(300.0, "--stuck-after", min=0, callback=finite, help="Flag tasks running longer than this many seconds."),
    expect: Optional[int] = EXPECT_OPTION,
    destination: Optional[List[str]] = DEST_OPTION,
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Running tasks with their age; old ones are flagged as stuck."""
    from pmsops.checks.celery import active

    url = _broker(broker)
    check_one(
        "celery active",
        "celery-active",
        lambda: active(url, timeout, stuck_after, destination or None, expect),
        timeout * 2,
        json_mode,
        strict,
        quiet,
        junit,
    )


@celery_app.command("stats")
def celery_stats(
    broker: Optional[str] = BROKER_OPTION,
    expect: Optional[int] = EXPECT_OPTION,
    destination: Optional[List[str]] = DEST_OPTION,
    timeout: float = TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Pool, concurrency, processed tasks and uptime per worker."""
    from pmsops.checks.celery import stats

    url = _broker(broker)
    check_one("celery stats", "celery-stats", lambda: stats(url, timeout, destination or None, expect), timeout * 2, json_mode, strict, quiet, junit)


def doctor(
    timeout: float = TIMEOUT_OPTION,
    expect_workers: Optional[int] = typer.Option(None, "--expect-workers", min=0, help="Number of Celery workers that must answer."),
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Every configured check at once: Redis URLs, Redis, database, Celery, /health/ready; each shown as soon as it is known."""
    from pmsops.checks.doctor import SLOTS, check_inputs, run_doctor

    env = settings()
    check_inputs(env)  # bad input is one line and exit 2, before the report header
    started = state().started or None
    stream(
        "doctor",
        SLOTS,
        lambda collector: run_doctor(env, timeout, expect_workers, started=started, collector=collector),
        json_mode,
        strict,
        quiet,
        title="pmsops doctor",
        junit=junit,
    )
