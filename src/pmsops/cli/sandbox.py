"""The reference stack: ``sandbox up|status|down|stop|start`` and ``demo``."""

from __future__ import annotations

from typing import Optional

import typer

from pmsops.cli.common import JSON_OPTION, ReportOptions, finish, finish_results, finite, output

sandbox_app = typer.Typer(help="A local reference stack to rehearse the runbook (real Redis, PostgreSQL, worker, API).", no_args_is_help=True)
DIR_OPTION = typer.Option(
    None,
    "--dir",
    help="Sandbox directory: created 0700, or an existing one of yours no one else can write "
    "(default $PMSOPS_SANDBOX_DIR or $XDG_RUNTIME_DIR/pmsops-sandbox-UID, else /tmp/pmsops-sandbox-UID).",
)


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox", rich_help_panel="Rehearsal (a local reference stack)")
    app.command("demo", rich_help_panel="Rehearsal (a local reference stack)")(demo)


@sandbox_app.command("up")
def sandbox_up(
    directory: Optional[str] = DIR_OPTION,
    database_url: Optional[str] = typer.Option(
        None, "--database-url", help="Use this PostgreSQL instead of a private cluster (migrated and seeded)."
    ),
    proxy: Optional[str] = typer.Option(
        None,
        "--proxy",
        metavar="VARIANT",
        help="Put a real nginx in front of the API (TLS on loopback, a private CA): nginx, nginx-untrusted (uvicorn does not "
        "trust the proxy: FastAPI redirects to http://) or nginx-http (PMS_API_URL is http:// and answers 301 to https://).",
    ),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Start the reference stack on free loopback ports and write its env file."""
    from pmsops import results
    from pmsops.sandbox.stack import Sandbox

    out = output(json_mode)
    sandbox = Sandbox.at(directory)
    if proxy:
        from pmsops.sandbox.proxy import check_variant

        check_variant(proxy)
    sandbox.up(database_url, progress=lambda line: out.progress(f"  {line}"), proxy=proxy)
    import shlex

    env_file = shlex.quote(str(sandbox.env_path))
    down = "pmsops sandbox down" + (f" --dir {shlex.quote(str(sandbox.directory))}" if directory else "")  # the command that stops this one
    summary = results.ok(
        "sandbox",
        f"up at {sandbox.directory}",
        notes=[f"pmsops --env-file {env_file} smoke", f"pmsops --env-file {env_file} doctor", down],
        details={"env_file": str(sandbox.env_path), "directory": str(sandbox.directory)},
    )
    finish(out.results([summary], "sandbox up"))


@sandbox_app.command("status")
def sandbox_status(directory: Optional[str] = DIR_OPTION, json_mode: bool = JSON_OPTION) -> None:
    """Which sandbox processes run, on which ports, and where the env file is."""
    from pmsops.sandbox.stack import Sandbox

    finish_results(Sandbox.at(directory).status(), "sandbox status", ReportOptions(json_mode))


@sandbox_app.command("down")
def sandbox_down(directory: Optional[str] = DIR_OPTION, json_mode: bool = JSON_OPTION) -> None:
    """Stop exactly what sandbox up started and remove its data."""
    from pmsops.sandbox.stack import Sandbox

    finish_results(Sandbox.at(directory).down(), "sandbox down", ReportOptions(json_mode))


@sandbox_app.command("stop")
def sandbox_stop(
    component: str = typer.Argument(..., help="redis, db, platform, worker, api or proxy."), directory: Optional[str] = DIR_OPTION
) -> None:
    """Stop one component, to rehearse an outage (then: pmsops smoke, pmsops doctor)."""
    from pmsops.sandbox.stack import Sandbox

    finish_results([Sandbox.at(directory).stop(component)], "sandbox stop")


@sandbox_app.command("start")
def sandbox_start(
    component: str = typer.Argument(..., help="redis, db, platform, worker, api or proxy."), directory: Optional[str] = DIR_OPTION
) -> None:
    """Start a stopped component again on its port."""
    from pmsops.sandbox.stack import Sandbox

    finish_results([Sandbox.at(directory).start(component)], "sandbox start")


def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the sandbox running afterwards."),
    directory: Optional[str] = DIR_OPTION,
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Use this PostgreSQL instead of a private cluster."),
    timeout: float = typer.Option(
        60.0,
        "--wait",
        "--timeout",
        min=1,
        callback=finite,
        metavar="SECONDS",
        help="How long the smoke waits for the sync (--timeout is the old name).",
    ),
) -> None:
    """The main job on a local default: sandbox up, smoke, doctor, sandbox down."""
    from pmsops.sandbox.demo import run_demo

    out = output()
    finish(run_demo(out.line, lambda found, command: out.results(found, command), keep, directory, database_url, timeout))
