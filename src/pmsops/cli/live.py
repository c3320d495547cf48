"""Live checks: ``check redis|db|health``, ``celery ping|registered|active|stats``, ``doctor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import typer

from pmsops.cli.common import (
    PLAIN,
    TIMEOUT_OPTION,
    ReportOptions,
    check_one,
    finite,
    fold_options,
    report_options,
    settings,
    state,
    stream,
)

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
@report_options
def check_redis(
    url: Optional[str] = typer.Option(None, "--url", help=f"Redis URL. {URL_HELP} (REDIS_URL)"),
    timeout: float = TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """PING, server version, latency and a SET/GET round trip (runbook: Test Redis Connection)."""
    from pmsops.checks.redis import check_redis as run
    from pmsops.checks.redis import read_redis_url

    the_url = url or settings().require("REDIS_URL")
    variable = "--url" if url else "REDIS_URL"
    read_redis_url(
        the_url, variable
    )  # a URL its client (redis-py; kombu for Celery's socket URLs) would misread is bad input (exit 2), before anything is attempted
    check_one("check redis", "redis", lambda: run(the_url, timeout, variable=variable), timeout, report)


@check_app.command("db")
@report_options
def check_db(
    url: Optional[str] = typer.Option(None, "--url", help=f"PostgreSQL URL. {URL_HELP} (DATABASE_URL)"),
    timeout: float = TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Connect with asyncpg, SELECT version(), latency (runbook: Database URL Verification)."""
    from pmsops.checks.db import check_db as run
    from pmsops.checks.db import normalise_dsn

    the_url = url or settings().require("DATABASE_URL")
    normalise_dsn(the_url, "--url" if url else "DATABASE_URL")  # read by asyncpg's parser: bad input is exit 2 before anything is attempted
    check_one("check db", "db", lambda: run(the_url, timeout, env=settings().env), timeout, report)


@check_app.command("health")
@report_options
def check_health(
    url: Optional[str] = typer.Option(None, "--url", help=f"API base URL or the /health/ready URL. {URL_HELP} (PMS_API_URL)"),
    timeout: float = TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """GET /health/ready and report each component and the workers (both response shapes)."""
    from pmsops.checks.health import check_health as run

    the_url = url or settings().require("PMS_API_URL")
    check_one("check health", "health", lambda: run(the_url, timeout), timeout, report)


def _broker(url: Optional[str]) -> str:
    """The broker URL, read by kombu's parser first: one it would misread is bad input (exit 2)."""
    from pmsops.urlread import read_url

    found = settings()
    the_url = url or found.require("CELERY_BROKER_URL", hint="export CELERY_BROKER_URL (or REDIS_URL), or pass --broker")
    read_url(the_url, "kombu", "--broker" if url else (found.source("CELERY_BROKER_URL") or "CELERY_BROKER_URL"))
    return the_url


BROKER_OPTION = typer.Option(None, "--broker", "--url", "-b", help="Broker URL. Default: CELERY_BROKER_URL, then REDIS_URL.")


@dataclass(frozen=True)
class CeleryTarget:
    """Which workers to ask, over which broker, for how long: the options every ``celery`` command shares (as celery's own
    ``inspect`` sub-commands share theirs)."""

    broker: Optional[str] = None
    expect: Optional[int] = None
    destination: Optional[List[str]] = None
    timeout: float = 3.0

    def url(self) -> str:
        """The broker URL (--broker, else the environment), read by kombu's own parser first."""
        return _broker(self.broker)


celery_options = fold_options(
    "target",
    CeleryTarget,
    (
        ("broker", Optional[str], BROKER_OPTION),
        ("expect", Optional[int], EXPECT_OPTION),
        ("destination", Optional[List[str]], DEST_OPTION),
        ("timeout", float, TIMEOUT_OPTION),
    ),
)


@celery_app.command("ping")
@report_options
@celery_options
def celery_ping(
    target: CeleryTarget = CeleryTarget(),
    report: ReportOptions = PLAIN,
) -> None:
    """Which workers answer, returning as soon as they all have (unlike celery inspect ping)."""
    from pmsops.checks.celery import ping

    url, t = target.url(), target
    check_one("celery ping", "celery", lambda: ping(url, t.timeout, t.expect, t.destination or None), t.timeout, report)


@celery_app.command("registered")
@report_options
@celery_options
def celery_registered(
    expect_task: Optional[List[str]] = typer.Option(None, "--expect-task", help="A task name that must be registered; repeatable."),
    target: CeleryTarget = CeleryTarget(),
    report: ReportOptions = PLAIN,
) -> None:
    """Registered tasks per worker (runbook: Check Active Workers and Registered Tasks)."""
    from pmsops.checks.celery import registered

    url, t = target.url(), target
    check_one(
        "celery registered",
        "celery-registered",
        lambda: registered(url, t.timeout, expect_task or [], t.destination or None, t.expect),
        t.timeout * 2,
        report,
    )


@celery_app.command("active")
@report_options
@celery_options
def celery_active(
    stuck_after: float = typer.Option(300.0, "--stuck-after", min=0, callback=finite, help="Flag tasks running longer than this many seconds."),
    target: CeleryTarget = CeleryTarget(),
    report: ReportOptions = PLAIN,
) -> None:
    """Running tasks with their age; old ones are flagged as stuck."""
    from pmsops.checks.celery import active

    url, t = target.url(), target
    check_one(
        "celery active",
        "celery-active",
        lambda: active(url, t.timeout, stuck_after, t.destination or None, t.expect),
        t.timeout * 2,
        report,
    )


@celery_app.command("stats")
@report_options
@celery_options
def celery_stats(
    target: CeleryTarget = CeleryTarget(),
    report: ReportOptions = PLAIN,
) -> None:
    """Pool, concurrency, processed tasks and uptime per worker."""
    from pmsops.checks.celery import stats

    url, t = target.url(), target
    check_one("celery stats", "celery-stats", lambda: stats(url, t.timeout, t.destination or None, t.expect), t.timeout * 2, report)


@report_options
def doctor(
    timeout: float = TIMEOUT_OPTION,
    expect_workers: Optional[int] = typer.Option(None, "--expect-workers", min=0, help="Number of Celery workers that must answer."),
    report: ReportOptions = PLAIN,
) -> None:
    """Every configured check at once: Redis URLs, Redis, database, Celery, /health/ready; each shown as soon as it is known."""
    from pmsops.checks.doctor import SLOTS, run_doctor

    env = settings()  # a bad URL variable is one failed result, and every check that does not need it still runs
    started = state().started or None
    stream(
        "doctor",
        SLOTS,
        lambda collector: run_doctor(env, timeout, expect_workers, started=started, collector=collector),
        report,
        title="pmsops doctor",
    )
