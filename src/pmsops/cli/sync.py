"""Sync library commands: ``db migrate|check`` and ``sync run|reap`` (direct, no HTTP)."""

from __future__ import annotations

from typing import Optional

import typer

from pmsops.cli.common import JSON_OPTION, STRICT_OPTION, finish_results, finite, output, settings

db_app = typer.Typer(help="The sync database: apply migrations, detect schema drift.", no_args_is_help=True)
sync_app = typer.Typer(help="Sync operations: trigger, follow and reap sync logs.", no_args_is_help=True)

DB_URL_OPTION = typer.Option(None, "--database-url", help="Default: DATABASE_URL.")
TYPE_OPTION = typer.Option("full", "--type", "-t", help="full, availability, pricing or bookings.")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(sync_app, name="sync")


def _database_url(value: Optional[str]) -> str:
    from pmsops.checks.db import normalise_dsn

    url = value or settings().require("DATABASE_URL")
    normalise_dsn(url)
    return url


@db_app.command("migrate")
def db_migrate(database_url: Optional[str] = DB_URL_OPTION, json_mode: bool = JSON_OPTION) -> None:
    """Apply the sync schema's migrations (idempotent; safe to run twice or concurrently)."""
    from pmsops.sync.admin import migrate_database

    finish_results(migrate_database(_database_url(database_url)), "db migrate", json_mode)


@db_app.command("check")
def db_check(database_url: Optional[str] = DB_URL_OPTION, json_mode: bool = JSON_OPTION, strict: bool = STRICT_OPTION) -> None:
    """Schema drift: missing tables or columns, CHECK constraints rejecting an operation type."""
    from pmsops.sync.admin import check_database_schema

    finish_results(check_database_schema(_database_url(database_url)), "db check", json_mode, strict)


def _validate_trigger(connection_id: str, sync_type: str) -> None:
    import uuid

    from pmsops.errors import UsageError
    from pmsops.sync import SYNC_TYPES

    try:
        uuid.UUID(connection_id)
    except ValueError:
        raise UsageError(f"connection id {connection_id!r} is not a UUID", hint="list connections with: pmsops connections list") from None
    if sync_type not in SYNC_TYPES:
        raise UsageError(f"unknown sync type {sync_type!r}: use one of {', '.join(SYNC_TYPES)}")


@sync_app.command("run")
def sync_run(
    connection_id: str = typer.Argument(..., help="Channel connection UUID."),
    sync_type: str = TYPE_OPTION,
    wait: bool = typer.Option(False, "--wait", help="Follow the logs until every operation is final."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, callback=finite, help="How long --wait waits."),
    database_url: Optional[str] = DB_URL_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Enqueue a sync directly through Celery (no HTTP): logs first, then tasks."""
    from pmsops.sync.admin import run_sync

    _validate_trigger(connection_id, sync_type)
    out = output(json_mode)
    progress = None if json_mode else (lambda line: out.progress(f"  … {line}"))
    finish_results(run_sync(_database_url(database_url), connection_id, sync_type, wait, timeout, progress=progress), "sync run", json_mode)


@sync_app.command("reap")
def sync_reap(
    older_than: str = typer.Option("60m", "--older-than", help="Open logs with no update for this long (90s, 60m, 2h)."),
    connection_id: Optional[str] = typer.Option(None, "--connection", help="Only this connection's logs."),
    database_url: Optional[str] = DB_URL_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Mark triggered/running logs with no update for that long as failed ("Marked stale …")."""
    import uuid

    from pmsops.errors import UsageError
    from pmsops.sync.admin import parse_duration, reap_logs

    if connection_id:
        try:
            uuid.UUID(connection_id)
        except ValueError:
            raise UsageError(f"connection id {connection_id!r} is not a UUID") from None
    finish_results(reap_logs(_database_url(database_url), parse_duration(older_than), connection_id), "sync reap", json_mode)
