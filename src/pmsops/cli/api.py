"""API commands (httpx, timeouts on every call): ``token``, ``connections list``,
``sync trigger``, ``sync logs``, ``smoke``."""

from __future__ import annotations

from typing import Optional

import typer

from pmsops.cli.common import (HTTP_TIMEOUT_OPTION, JSON_OPTION, JUNIT_OPTION, QUIET_OPTION, STRICT_OPTION, SYNC_TYPE_OPTION, WAIT_OPTION,
                               connection_argument, connection_id, finish, finish_results, output, settings, state, stream)
from pmsops.cli.sync import sync_app

connections_app = typer.Typer(help="Channel connections of the API.", no_args_is_help=True)

API_OPTION = typer.Option(None, "--url", "--api", help="API base URL (default PMS_API_URL, API, API_BASE_URL or BACKEND_URL).")
PANEL = "API (runbook: Quick Smoke, Manual Sync Trigger, Sync Logs)"


def register(app: typer.Typer) -> None:
    app.command("token", rich_help_panel=PANEL)(token)
    app.add_typer(connections_app, name="connections", rich_help_panel=PANEL)
    sync_app.command("trigger")(sync_trigger)
    sync_app.command("logs")(sync_logs)
    app.command("smoke", rich_help_panel=PANEL)(smoke)


def write_file(path: str, text: str) -> None:
    """A report file (mode 0600, never through a planted link); an unusable path is bad input, not a traceback."""
    from pmsops.safefile import write_text

    write_text(path, text, "report")


def _client(api: Optional[str], http_timeout: float):
    from pmsops.api.client import ApiClient
    from pmsops.api.token import obtain

    env = settings()
    base = api or env.require("PMS_API_URL")
    return ApiClient(base, obtain(env, http_timeout).token, http_timeout, env.get("AGENCY_ID"))


def token(
    verify: bool = typer.Option(False, "--verify", help="Check signature and audience with SUPABASE_JWT_SECRET/JWT_SECRET and JWT_AUDIENCE."),
    print_token: bool = typer.Option(False, "--print", help="Write the raw token alone on stdout (for export TOKEN=$(pmsops token --print))."),
    timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Get a JWT (password grant, or TOKEN) and show its length, parts and claims, never the token."""
    from pmsops.api.token import describe, obtain

    env = settings()
    info = obtain(env, timeout)
    if print_token:
        output().reveal(info.token)
        finish(0)
    secret = None
    if verify:
        secret = env.get("SUPABASE_JWT_SECRET") or env.require("JWT_SECRET", hint="--verify needs SUPABASE_JWT_SECRET or JWT_SECRET")
    finish_results(describe(info, secret, env.get("JWT_AUDIENCE")), "token", json_mode)


@connections_app.command("list")
def connections_list(
    limit: int = typer.Option(50, "--limit", min=1, max=100),
    offset: int = typer.Option(0, "--offset", min=0),
    api: Optional[str] = API_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    """List connections: id, platform, status, last sync (follows the 307 trailing-slash redirect)."""
    from pmsops.api.synclogs import connections_result

    with _client(api, timeout) as client:
        items, response = client.list_connections(limit, offset)
    finish_results([connections_result(items, bool(response.redirected_from))], "connections list", json_mode, quiet=quiet)


def sync_trigger(
    connection: Optional[str] = connection_argument(),
    sync_type: str = SYNC_TYPE_OPTION,
    wait: Optional[float] = typer.Option(None, "--wait", min=1, metavar="SECONDS", help="Follow the logs until every created log is final, at most this long."),
    api: Optional[str] = API_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """POST /channel-connections/{id}/sync; prints task ids and batch id; --wait follows the logs in place."""
    cid = connection_id(connection)
    client = _client(api, timeout)
    from pmsops.api.synclogs import follow_trigger

    with client:
        stream("sync trigger", ("trigger", "sync-logs") if wait else ("trigger",),
               lambda collector: follow_trigger(client, cid, sync_type, wait, collector), json_mode, strict, quiet, junit=junit)


def sync_logs(
    connection: Optional[str] = connection_argument(),
    limit: int = typer.Option(20, "--limit", min=1, max=100),
    offset: int = typer.Option(0, "--offset", min=0),
    status: Optional[str] = typer.Option(None, "--status", help="Only logs with this status."),
    stale_after: float = typer.Option(600.0, "--stale-after", min=1, help="Logs triggered/running with no update for this many seconds are stuck (a failure)."),
    save: Optional[str] = typer.Option(None, "--save", metavar="FILE", help="Also write the (normalised) JSON page to this file."),
    api: Optional[str] = API_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
    junit: Optional[str] = JUNIT_OPTION,
) -> None:
    """Table and verdict of a connection's sync logs: the latest run of an operation failed or a log stuck open fails."""
    import json

    from pmsops.api.synclogs import log_table, summarise
    from pmsops.redaction import redact_obj

    cid = connection_id(connection)
    with _client(api, timeout) as client:
        page = client.sync_logs(cid, limit, offset, status=status)
    logs = page["logs"]
    if save:
        write_file(save, json.dumps(redact_obj(page), indent=2, default=str))
    found = summarise(logs, stale_after)
    found[0].notes = log_table(logs) + found[0].notes
    found[0].details = {"logs": logs, "total": len(logs)}
    finish_results(found, "sync logs", json_mode, strict, quiet=quiet, junit=junit)


def smoke(
    connection: Optional[str] = typer.Option(None, "--connection", help="Connection id (default CID, else the first listed)."),
    sync_type: str = typer.Option("full", "--sync-type", "--type", "-t", help="full, availability, pricing or bookings."),
    wait: float = WAIT_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Run the read-only steps 1-4 only (nothing is written)."),
    junit: Optional[str] = JUNIT_OPTION,
    suite_name: Optional[str] = typer.Option(None, "--suite-name", help="Context in the JUnit suite name and classname (default: the active context, PMSOPS_CONTEXT, else the API host)."),
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    """The runbook's Quick Smoke: env → token → /health/ready → connection → trigger → logs, each step shown as it ends."""
    from pmsops.api.smoke import LABELS, SLOTS, run_smoke, suite_context
    from pmsops.sync import SYNC_TYPES

    if sync_type not in SYNC_TYPES:
        from pmsops.errors import UsageError

        raise UsageError(f"unknown sync type {sync_type!r}: use one of {', '.join(SYNC_TYPES)}")
    env, run = settings(), state()
    context = suite_context(env, suite_name or run.context)
    holder: dict = {}

    def go(collector) -> None:
        holder["run"] = run_smoke(env, connection, sync_type, wait, timeout, env_file=run.env_file, trigger=not no_trigger, collector=collector)

    stream("smoke", SLOTS, go, json_mode, strict, quiet, title=f"pmsops smoke (Quick Smoke, {context})", labels=LABELS, junit=junit,
           junit_context=context, extra=lambda: {"context": {**(holder["run"].context if "run" in holder else {}), "suite": context}})
