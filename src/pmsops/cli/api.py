"""API commands (httpx, timeouts on every call): ``token``, ``connections list``,
``sync trigger``, ``sync logs``, ``smoke``."""

from __future__ import annotations

from typing import Optional

import typer

from pmsops.cli.common import JSON_OPTION, STATE, STRICT_OPTION, finish, finish_results, finite, output, settings
from pmsops.cli.sync import TYPE_OPTION, _validate_trigger, sync_app

connections_app = typer.Typer(help="Channel connections of the API.", no_args_is_help=True)

API_OPTION = typer.Option(None, "--api", help="API base URL (default PMS_API_URL, API, API_BASE_URL or BACKEND_URL).")
HTTP_TIMEOUT_OPTION = typer.Option(10.0, "--http-timeout", min=0.1, callback=finite, help="Timeout of each HTTP call in seconds.")


def register(app: typer.Typer) -> None:
    app.command("token")(token)
    app.add_typer(connections_app, name="connections")
    sync_app.command("trigger")(sync_trigger)
    sync_app.command("logs")(sync_logs)
    app.command("smoke")(smoke)


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
    http_timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Get a JWT (password grant, or TOKEN) and show its length, parts and claims, never the token."""
    from pmsops.api.token import describe, obtain

    env = settings()
    info = obtain(env, http_timeout)
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
    http_timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """List connections: id, platform, status, last sync (follows the 307 trailing-slash redirect)."""
    from pmsops import results

    with _client(api, http_timeout) as client:
        items, response = client.list_connections(limit, offset)
    notes = [f"{c.get('id')}  {c.get('platform_type', '?'):<12} {c.get('status', '?'):<9} last sync {c.get('last_sync_at') or 'never'}" for c in items]
    if response.redirected_from:
        notes.append("(followed a 307 redirect to the trailing-slash path)")
    result = results.ok("connections", f"{len(items)} connection(s)", notes=notes, details={"connections": items}) if items else \
        results.warn("connections", "no channel connections", hint="create one via POST /api/v1/channel-connections/")
    finish_results([result], "connections list", json_mode)


def sync_trigger(
    connection_id: str = typer.Argument(..., help="Channel connection UUID."),
    sync_type: str = TYPE_OPTION,
    wait: bool = typer.Option(False, "--wait", help="Follow the logs until every created log is final."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, callback=finite, help="How long --wait waits."),
    api: Optional[str] = API_OPTION,
    http_timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """POST /channel-connections/{id}/sync; prints task ids and batch id; --wait follows the logs."""
    from pmsops import results
    from pmsops.api.synclogs import final_verdict, wait_until_final

    _validate_trigger(connection_id, sync_type)
    out = output(json_mode)
    with _client(api, http_timeout) as client:
        body = client.trigger_sync(connection_id, sync_type)
        task_ids, log_ids = list(body.get("task_ids") or []), [str(i) for i in body.get("created_log_ids") or []]
        notes = [f"task {t}" for t in task_ids] + ([f"batch {body['batch_id']}"] if body.get("batch_id") else [])
        found = [results.ok("trigger", f"{sync_type} sync {body.get('status', 'triggered')}: {len(task_ids)} task(s)", notes=notes,
                            details={k: body.get(k) for k in ("task_ids", "batch_id", "created_log_ids", "status")})]
        if wait:
            progress = None if json_mode else (lambda line: out.progress(f"  … {line}"))
            logs, finished = wait_until_final(lambda: client.sync_logs(connection_id, limit=50)["logs"], task_ids, log_ids, timeout, 1.0, progress)
            found.append(final_verdict("logs", logs, finished, timeout))
    finish(out.results(found, "sync trigger"))


def sync_logs(
    connection_id: str = typer.Argument(..., help="Channel connection UUID."),
    limit: int = typer.Option(20, "--limit", min=1, max=100),
    offset: int = typer.Option(0, "--offset", min=0),
    status: Optional[str] = typer.Option(None, "--status", help="Only logs with this status."),
    stale_after: float = typer.Option(600.0, "--stale-after", min=1, callback=finite, help="Warn about triggered/running logs older than this many seconds."),
    save: Optional[str] = typer.Option(None, "--save", help="Also write the (normalised) JSON page to this file."),
    api: Optional[str] = API_OPTION,
    http_timeout: float = HTTP_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
) -> None:
    """Table and summary of a connection's sync logs, retry details, stale open logs."""
    import json
    import uuid

    from pmsops.api.synclogs import summarise
    from pmsops.errors import UsageError
    from pmsops.redaction import redact_obj

    try:
        uuid.UUID(connection_id)
    except ValueError:
        raise UsageError(f"connection id {connection_id!r} is not a UUID") from None
    with _client(api, http_timeout) as client:
        page = client.sync_logs(connection_id, limit, offset, status=status)
    logs = page["logs"]
    if save:
        write_file(save, json.dumps(redact_obj(page), indent=2, default=str))
    found = summarise(logs, stale_after)
    table = [f"{str(l.get('created_at'))[:19]}  {l.get('operation_type', '?'):<20} {l.get('direction', '?'):<8} {l.get('status', '?'):<9} "
             f"retry {(l.get('details') or {}).get('retry_count', 0)}" + (f"  {l.get('error')}" if l.get("error") else "") for l in logs]
    found[0].notes = table + found[0].notes
    found[0].details = {"logs": logs, "total": len(logs)}
    finish_results(found, "sync logs", json_mode, strict)


def smoke(
    connection: Optional[str] = typer.Option(None, "--connection", help="Connection id (default CID, else the first listed)."),
    sync_type: str = typer.Option("full", "--sync-type", help="full, availability, pricing or bookings."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, callback=finite, help="How long step 6 waits for the sync to finish."),
    http_timeout: float = HTTP_TIMEOUT_OPTION,
    junit: Optional[str] = typer.Option(None, "--junit", help="Write a JUnit XML report (one testcase per step)."),
    env_file: Optional[str] = typer.Option(None, "--env-file", help="Load this env file first (same as the global option)."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """The runbook's Quick Smoke: env → token → /health/ready → connection → trigger → logs."""
    from pmsops.api.smoke import junit_xml, run_smoke
    from pmsops.cli.main import apply_env_file

    if env_file:
        apply_env_file(env_file)
    from pmsops.sync import SYNC_TYPES

    if sync_type not in SYNC_TYPES:
        from pmsops.errors import UsageError

        raise UsageError(f"unknown sync type {sync_type!r}: use one of {', '.join(SYNC_TYPES)}")
    out = output(json_mode)
    progress = None if json_mode else (lambda line: out.progress(f"    … {line}"))
    run = run_smoke(settings(), connection, sync_type, timeout, http_timeout, progress=progress, env_file=env_file or STATE.env_file)
    if junit:
        write_file(junit, junit_xml(run))
    finish(out.results(run.results, "smoke", title="pmsops smoke (Quick Smoke)", extra={"context": run.context}))
