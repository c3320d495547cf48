"""``pmsops top`` (the live view) and ``pmsops report`` (the incident bundle)."""

from __future__ import annotations

from typing import List, Optional

import typer

from pmsops.cli.common import JSON_OPTION, finish, finite, output, settings, state


def register(app: typer.Typer) -> None:
    app.command("top", rich_help_panel="Incidents (runbook: Monitoring)")(top)
    app.command("report", rich_help_panel="Incidents (runbook: Monitoring)")(report)
    app.command("exporter", rich_help_panel="Incidents (runbook: Monitoring)")(exporter)


ONCE_WIDTH = 120
EXPECT_WORKERS_OPTION = typer.Option(None, "--expect-workers", min=0, help="Number of Celery workers that must answer; a missing one stands out.")


def _set_aside_unusable_urls(opts, env) -> None:
    """A URL variable its client would misread (a raw '#' in the password) is one failed part of the screen, named,
    and exit 1; top still watches what does not need it. It was exit 2 before anything was watched (#24 item 2)."""
    from pmsops.checks.doctor import input_errors

    bad = input_errors(env)
    broker_variable = "CELERY_BROKER_URL" if env.env.get("CELERY_BROKER_URL") else "REDIS_URL"
    for part, variable in (("broker", broker_variable), ("db", "DATABASE_URL")):
        if variable in bad:
            message = bad[variable].message
            opts.unusable[part] = message if message.startswith(variable) else f"{variable}: {message}"
            if part == "broker":
                opts.broker_url = None
            else:
                opts.database_url = None


def top(
    interval: float = typer.Option(2.0, "--interval", "-n", min=0.2, callback=finite, help="Seconds between refreshes."),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit (for SSH one-liners and scripts)."),
    json_mode: bool = typer.Option(False, "--json", help="Print one snapshot as JSON (workers, queues, active, syncs, platforms) and exit."),
    expect_workers: Optional[int] = EXPECT_WORKERS_OPTION,
    broadcast_timeout: float = typer.Option(
        1.0, "--broadcast-timeout", min=0.1, max=30, callback=finite, help="How long a refresh waits for workers to answer."
    ),
    timeout: float = typer.Option(2.0, "--timeout", min=0.1, max=60, callback=finite, help="Connect and read timeout for Redis and the database."),
    stuck_after: float = typer.Option(300.0, "--stuck-after", min=0, callback=finite, help="Highlight tasks running longer than this many seconds."),
    queue: Optional[List[str]] = typer.Option(
        None, "--queue", "-Q", help="Also watch this queue (the bound queues and 'celery' always are); repeatable."
    ),
) -> None:
    """The whole sync system on one screen: workers, queues, active tasks, syncs, breakers and rate limits (q or Ctrl-C quits)."""
    import os

    from pmsops.observe.snapshot import Collector, options_from_settings

    opts = options_from_settings(
        settings(),
        expect_workers=expect_workers,
        broadcast_timeout=broadcast_timeout,
        redis_timeout=timeout,
        db_timeout=timeout,
        stuck_after=stuck_after,
        queues=list(queue or []),
        context=state().context,
    )
    _set_aside_unusable_urls(opts, settings())
    if not opts.broker_url and not opts.database_url and not opts.unusable:
        from pmsops.errors import UsageError

        raise UsageError(
            "neither CELERY_BROKER_URL/REDIS_URL nor DATABASE_URL is set: nothing to watch", hint="pmsops --env-file /root/pms_env.sh top"
        )
    out = output(json_mode)
    with Collector(opts) as collector:
        from pmsops.observe.top import exit_code, render, run_live

        if json_mode:
            snapshot = collector.collect()
            out.json(snapshot)
            finish(exit_code(snapshot))
        if once or not out.console.is_terminal:
            if not out.console.is_terminal and not os.environ.get("COLUMNS"):
                out.console.width = ONCE_WIDTH  # piped or over SSH without a terminal: wide enough for every column
            snapshot = collector.collect()
            out.console.print(render(snapshot, width=out.console.width))
            finish(exit_code(snapshot))
        finish(run_live(collector.collect, interval, out.console))


def report(
    output_path: Optional[str] = typer.Option(
        None, "--output", "-o", metavar="PATH", help="A directory (the bundle's name inside it) or the file to write; default: the current directory."
    ),
    since: str = typer.Option("60m", "--since", help="How far back sync logs, charts and worker logs go (90s, 60m, 2h, 1d)."),
    context_name: Optional[str] = typer.Option(
        None, "--context-name", help="Name in the file name (default: the active context, PMSOPS_CONTEXT, else 'default')."
    ),
    expect_workers: Optional[int] = EXPECT_WORKERS_OPTION,
    worker_log: Optional[List[str]] = typer.Option(
        None, "--worker-log", metavar="PATH", help="A worker log file to excerpt (when the worker is not a Docker container); repeatable."
    ),
    no_docker: bool = typer.Option(False, "--no-docker", help="Do not ask Docker (host check, container logs) even if an engine answers."),
    timeout: float = typer.Option(3.0, "--timeout", min=0.1, max=60, callback=finite, help="Connect and read timeout of each check."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Write pmsops-report-<context>-<UTC time>.tar.gz: report.md, report.json, report.html and the evidence, redacted and secret-scanned."""
    from pmsops.observe.report import make_report

    opts = _report_options(output_path, since, context_name, expect_workers, worker_log, no_docker, timeout)
    path, bundle = make_report(settings(), opts, output_path)
    out = output(json_mode)
    if json_mode:
        out.json(
            {
                "schema": "pmsops.report/v1",
                "command": "report",
                "status": bundle.status.value,
                "exit_code": 0,
                "path": str(path),
                "files": sorted(bundle.members),
                "summary": bundle.summary,
            }
        )
        finish(0)
    out.line(f"wrote {path}")
    for item in bundle.summary[:10]:
        out.line(f"  {item['status'].upper():<4} {item['name']}: {item['what']}  (since {item['since']}; runbook: {item['runbook']})")
    if not bundle.summary:
        out.line("  nothing is failing")
    finish(0)


def _report_options(
    output_path: Optional[str],
    since: str,
    context_name: Optional[str],
    expect_workers: Optional[int],
    worker_log: Optional[List[str]],
    no_docker: bool,
    timeout: float,
):
    """The report's options from its flags; bad input is one line and exit 2, before anything is read."""
    import os

    from pmsops.errors import UsageError
    from pmsops.observe.report import Options, context_name as make_context
    from pmsops.sync.maintenance import parse_duration

    try:
        since_seconds = parse_duration(since)
    except UsageError:
        raise UsageError(f"--since {since!r}: not a positive duration (use e.g. 90s, 60m, 2h, 1d)") from None
    if output_path and not os.path.isdir(output_path) and not os.path.isdir(os.path.dirname(os.path.abspath(output_path))):
        raise UsageError(f"--output {output_path}: its directory does not exist")
    for path in worker_log or []:
        if not os.path.isfile(path):
            raise UsageError(f"--worker-log {path}: not a readable file")
    return Options(
        since_seconds=since_seconds,
        since_text=since.strip(),
        timeout=timeout,
        expect_workers=expect_workers,
        worker_logs=list(worker_log or []),
        docker=not no_docker,
        context=make_context(context_name or state().context),
    )


def exporter(
    listen: str = typer.Option("127.0.0.1:9808", "--listen", metavar="HOST:PORT", help="Where to serve /metrics (loopback by default)."),
    cache: float = typer.Option(
        5.0, "--cache", min=0.5, max=300, callback=finite, help="Seconds a refresh answers scrapes: any number of scrapers cost one."
    ),
    deadline: float = typer.Option(
        5.0, "--deadline", min=1.0, max=60, callback=finite, help="Seconds a refresh may take; a source slower than its share is down."
    ),
    max_series: int = typer.Option(
        2000, "--max-series", min=50, help="At most this many series (per-account and per-connection ones are cut first)."
    ),
    per_connection: bool = typer.Option(False, "--per-connection", help="Also the last success per connection (a series per connection)."),
    expect_workers: Optional[int] = EXPECT_WORKERS_OPTION,
    once: bool = typer.Option(False, "--once", help="Print one scrape's metrics and exit (what Prometheus would read)."),
    print_rules: bool = typer.Option(False, "--print-rules", help="Print the shipped Prometheus alert rules (a rule file) and exit."),
    print_dashboard: bool = typer.Option(False, "--print-dashboard", help="Print the shipped Grafana dashboard (JSON) and exit."),
) -> None:
    """Serve the sync system as Prometheus metrics (what top shows, plus counters from the sync log); alert rules ship with it."""
    from pmsops.observe import exporter as exp

    out = output(False)
    if print_rules or print_dashboard:
        out.block(exp.shipped_file("pmsops-rules.yml" if print_rules else "grafana-dashboard.json"))
        finish(0)
    host, port = exp.parse_listen(listen)
    options = exp.options_from(
        settings(), expect_workers=expect_workers, cache=cache, deadline=deadline, max_series=max_series, per_connection=per_connection
    )
    served = exp.SyncExporter(options)
    try:
        if once:
            out.block(exp.render_once(served))
            finish(0)
        server = exp.listen_on(served, host, port)
        out.line(f"serving http://{exp.url_host(host)}:{server.server_port}/metrics (a refresh every {cache:g} s at most, deadline {deadline:g} s)")
        exp.wait_for_stop(server)
    finally:
        served.close()
    finish(0)
