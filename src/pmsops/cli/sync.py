"""The sync commands: ``db migrate|check``, ``sync run|reap`` (direct, no HTTP) and ``sync trigger|logs`` (through the API)."""

from __future__ import annotations

from typing import Optional

import typer

from pmsops.cli.common import (
    API_OPTION,
    CONNECTION_ID,
    HTTP_TIMEOUT_OPTION,
    JSON_OPTION,
    PLAIN,
    STRICT_OPTION,
    SYNC_TYPE_OPTION,
    ReportOptions,
    api_client,
    check_report_target,
    connection_argument,
    connection_id,
    finish,
    finish_results,
    output,
    report_options,
    settings,
    state,
    stream,
)

db_app = typer.Typer(help="The sync database: apply migrations, detect schema drift.", no_args_is_help=True)
sync_app = typer.Typer(help="Sync operations: trigger, follow and reap sync logs.", no_args_is_help=True)

DB_URL_OPTION = typer.Option(None, "--database-url", "--url", help="Default: DATABASE_URL.")
PANEL = "Syncs and their database (runbook: Sync Logs, Manual Sync Trigger)"


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db", rich_help_panel=PANEL)
    app.add_typer(sync_app, name="sync", rich_help_panel=PANEL)


def _database_url(value: Optional[str]) -> str:
    from pmsops.checks.db import normalise_dsn

    url = value or settings().require("DATABASE_URL")
    normalise_dsn(url)
    return url


@db_app.command("migrate")
def db_migrate(database_url: Optional[str] = DB_URL_OPTION, json_mode: bool = JSON_OPTION) -> None:
    """Apply the sync schema's migrations (idempotent; safe to run twice or concurrently)."""
    from pmsops.sync.maintenance import migrate_database

    finish_results(migrate_database(_database_url(database_url)), "db migrate", ReportOptions(json_mode))


@db_app.command("check")
def db_check(database_url: Optional[str] = DB_URL_OPTION, json_mode: bool = JSON_OPTION, strict: bool = STRICT_OPTION) -> None:
    """Schema drift: missing tables or columns, CHECK constraints rejecting an operation type."""
    from pmsops.sync.maintenance import check_database_schema

    finish_results(check_database_schema(_database_url(database_url)), "db check", ReportOptions(json_mode, strict))


@sync_app.command("run")
@report_options
def sync_run(
    connection: Optional[str] = connection_argument(),
    sync_type: str = SYNC_TYPE_OPTION,
    wait: Optional[float] = typer.Option(
        None, "--wait", min=1, metavar="SECONDS", help="Follow the logs until every operation is final, at most this long."
    ),
    database_url: Optional[str] = DB_URL_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Enqueue a sync directly through Celery (no HTTP): logs first, then tasks; --wait follows them in place."""
    from pmsops.synclogs import describe_log
    from pmsops.sync.maintenance import run_sync

    from pmsops.sync.config import SyncSettings

    cid = connection_id(connection)
    url = _database_url(database_url)
    sync_settings = SyncSettings.from_env(state().environ())  # built here, once, from the environment and the env file

    def go(collector) -> None:
        def show(logs: list) -> None:
            for log in logs:
                collector.progress("sync", str(log.get("id") or log.get("task_id")), describe_log(log))

        collector.start("trigger")
        if wait:
            collector.start("sync")
        found = run_sync(url, cid, sync_type, bool(wait), wait or 60.0, progress=show, sync_settings=sync_settings)
        collector.finish("trigger", found[:1])
        if wait:
            collector.finish("sync", found[1:])

    stream("sync run", ("trigger", "sync") if wait else ("trigger",), go, report)


@sync_app.command("reap")
def sync_reap(
    older_than: str = typer.Option("60m", "--older-than", help="Open logs with no update for this long (90s, 60m, 2h)."),
    connection: Optional[str] = typer.Option(None, "--connection", click_type=CONNECTION_ID, help="Only this connection's logs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the logs that would be marked failed; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (needed when not on a terminal: scripts, cron)."),
    database_url: Optional[str] = DB_URL_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Mark triggered/running logs with no update for that long as failed ("Marked stale …"); asks first on a terminal."""
    import sys

    from pmsops.errors import UsageError
    from pmsops.sync.maintenance import parse_duration, reap_logs

    cid = connection
    seconds = parse_duration(older_than)
    url = _database_url(database_url)
    if dry_run:
        finish_results(reap_logs(url, seconds, cid, dry_run=True), "sync reap", ReportOptions(json_mode))
    if not yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()) or json_mode:
            raise UsageError(
                "sync reap changes production data: pass --yes to confirm (or --dry-run to only list)",
                hint="pmsops sync reap --older-than 60m --dry-run",
            )
        preview = reap_logs(url, seconds, cid, dry_run=True)
        out = output()
        out.results(preview, "sync reap")
        if not preview[0].details.get("reaped"):
            finish(0)
        if not typer.confirm(f"Mark these {len(preview[0].details['reaped'])} log(s) failed?", default=False):
            out.line("nothing changed")
            finish(1)
    finish_results(reap_logs(url, seconds, cid), "sync reap", ReportOptions(json_mode))


@sync_app.command("trigger")
@report_options
def sync_trigger(
    connection: Optional[str] = connection_argument(),
    sync_type: str = SYNC_TYPE_OPTION,
    wait: Optional[float] = typer.Option(
        None, "--wait", min=1, metavar="SECONDS", help="Follow the logs until every created log is final, at most this long."
    ),
    api: Optional[str] = API_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """POST /channel-connections/{id}/sync; prints task ids and batch id; --wait follows the logs in place."""
    cid = connection_id(connection)
    client = api_client(api, timeout, budget=wait)
    from pmsops.procedures.no_worker import NoWorkerProbe
    from pmsops.synclogs import follow_trigger

    probe = NoWorkerProbe(settings().get("CELERY_BROKER_URL"), timeout) if wait else None
    with client:
        stream(
            "sync trigger",
            ("trigger", "sync-logs") if wait else ("trigger",),
            lambda collector: follow_trigger(client, cid, sync_type, wait, collector, probe),
            report,
        )


@sync_app.command("logs")
@report_options
def sync_logs(
    connection: Optional[str] = connection_argument(),
    limit: int = typer.Option(20, "--limit", min=1, max=100),
    offset: int = typer.Option(0, "--offset", min=0),
    status: Optional[str] = typer.Option(None, "--status", help="Only logs with this status."),
    stale_after: float = typer.Option(
        600.0, "--stale-after", min=1, help="Logs triggered/running with no update for this many seconds are stuck (a failure)."
    ),
    save: Optional[str] = typer.Option(None, "--save", metavar="FILE", help="Also write the (normalised) JSON page to this file."),
    api: Optional[str] = API_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Table and verdict of a connection's sync logs: the latest run of an operation failed or a log stuck open fails."""
    import json

    from pmsops.synclogs import logs_report
    from pmsops.redaction import redact_obj

    cid = connection_id(connection)
    check_report_target(save)
    with api_client(api, timeout) as client:
        page = client.sync_logs(cid, limit, offset, status=status)
    logs = page["logs"]
    if save:
        from pmsops.safefile import write_text

        write_text(save, json.dumps(redact_obj(page), indent=2, default=str), "report")
    finish_results(logs_report(logs, stale_after), "sync logs", report)
