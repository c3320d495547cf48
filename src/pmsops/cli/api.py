"""API commands (httpx, timeouts on every call): ``token``, ``connections list``, ``smoke``
(``sync trigger`` and ``sync logs`` live with the rest of the ``sync`` group in :mod:`pmsops.cli.sync`)."""

from __future__ import annotations

from typing import Optional

import typer

from pmsops.cli.common import (
    API_OPTION,
    HTTP_TIMEOUT_OPTION,
    JSON_OPTION,
    PLAIN,
    QUIET_OPTION,
    WAIT_OPTION,
    ReportOptions,
    api_client,
    finish,
    finish_results,
    output,
    report_options,
    settings,
    state,
    stream,
)

connections_app = typer.Typer(help="Channel connections of the API.", no_args_is_help=True)

PANEL = "API (runbook: Quick Smoke, Manual Sync Trigger, Sync Logs)"


def register(app: typer.Typer) -> None:
    app.command("token", rich_help_panel=PANEL)(token)
    app.add_typer(connections_app, name="connections", rich_help_panel=PANEL)
    from pmsops.procedures.smoke import variables_help

    app.command("smoke", rich_help_panel=PANEL, epilog=variables_help())(smoke)


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
    finish_results(describe(info, secret, env.get("JWT_AUDIENCE")), "token", ReportOptions(json_mode))


@connections_app.command("list")
def connections_list(
    limit: int = typer.Option(50, "--limit", min=1, max=100),
    offset: int = typer.Option(0, "--offset", min=0),
    api: Optional[str] = API_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    """List connections: id, platform, status, last sync (GET /api/v1/channel-connections/, the slashed path)."""
    from pmsops.synclogs import connections_result

    with api_client(api, timeout) as client:
        items, response = client.list_connections(limit, offset)
    finish_results([connections_result(items, response.redirect_note())], "connections list", ReportOptions(json_mode, quiet=quiet))


@report_options
def smoke(
    connection: Optional[str] = typer.Option(None, "--connection", help="Connection id (default CID, else the first listed)."),
    sync_type: str = typer.Option("full", "--sync-type", "--type", "-t", help="full, availability, pricing or bookings."),
    wait: float = WAIT_OPTION,
    timeout: float = HTTP_TIMEOUT_OPTION,
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Run the read-only steps 1-4 only (nothing is written)."),
    suite_name: Optional[str] = typer.Option(
        None, "--suite-name", help="Context in the JUnit suite name and classname (default: the active context, PMSOPS_CONTEXT, else the API host)."
    ),
    report: ReportOptions = PLAIN,
) -> None:
    """The runbook's Quick Smoke: env → token → /health/ready → connection → trigger → logs, each step shown as it ends."""
    from pmsops.procedures.smoke import LABELS, SLOTS, run_smoke, suite_context
    from pmsops.sync import SYNC_TYPES

    if sync_type not in SYNC_TYPES:
        from pmsops.errors import UsageError

        raise UsageError(f"unknown sync type {sync_type!r}: use one of {', '.join(SYNC_TYPES)}")
    env, run = settings(), state()
    context = suite_context(env, suite_name or run.context)
    holder: dict = {}

    def go(collector) -> None:
        holder["run"] = run_smoke(env, connection, sync_type, wait, timeout, env_file=run.env_file, trigger=not no_trigger, collector=collector)

    stream(
        "smoke",
        SLOTS,
        go,
        report,
        title=f"pmsops smoke (Quick Smoke, {context})",
        labels=LABELS,
        junit_context=context,
        extra=lambda: {"context": {**(holder["run"].context if "run" in holder else {}), "suite": context}},
    )
