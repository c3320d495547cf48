"""Worker-side commands for inside the container: ``wait-for-deps``, ``worker-start``, ``worker-check``."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from pmsops.cli.common import (
    PLAIN,
    ReportOptions,
    export_environment,
    finish,
    finish_results,
    finite,
    output,
    report_options,
    settings,
)

PANEL = "Worker container (runbook: Redis + Celery Worker Setup)"


def register(app: typer.Typer) -> None:
    app.command("wait-for-deps", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, rich_help_panel=PANEL)(wait_for_deps)
    app.command("worker-start", rich_help_panel=PANEL)(worker_start)
    app.command("worker-check", rich_help_panel=PANEL)(worker_check)


def _exec(argv: list[str]) -> None:
    """Replace this process, so signals reach the command as they would reach PID 1's child."""
    export_environment()  # the command sees the env file's values, as it would after `source`
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        from pmsops.errors import UsageError

        raise UsageError(f"cannot execute {argv[0]}: {exc.strerror}") from None


def wait_for_deps(
    ctx: typer.Context,
    timeout: Optional[float] = typer.Option(
        None,
        "--wait",
        "--timeout",
        min=0,
        callback=finite,
        metavar="SECONDS",
        help="Seconds to wait in all (default WORKER_WAIT_TIMEOUT or 60); --timeout is the old name.",
    ),
    interval: Optional[float] = typer.Option(
        None, "--interval", min=0.05, callback=finite, help="Seconds between attempts (default WORKER_WAIT_INTERVAL or 2)."
    ),
) -> None:
    """Wait for the database and Redis (DNS → TCP → credentials), then exec `-- COMMAND` if given.

    Exit 0 ready, 124 timeout, 1 permanent error (e.g. wrong password).
    """
    from pmsops.worker.wait import settings_from, wait_for_dependencies

    command = list(ctx.args)
    if command and command[0] == "--":
        command = command[1:]
    out = output()
    code = wait_for_dependencies(settings_from(settings().env, timeout, interval), out.line)
    if code == 0 and command:
        _exec(command)
    finish(code)


def worker_start(
    app: Optional[str] = typer.Option(None, "--app", "-A", help="Celery app (default CELERY_APP or pmsops.sync.worker:celery_app)."),
    hostname: Optional[str] = typer.Option(None, "--hostname", "-n", help="Worker node name (default celery@<hostname>)."),
    allow_root: bool = typer.Option(False, "--allow-root", help="Start even as root (Celery will print a SecurityWarning)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the exact command instead of running it."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Skip the dependency wait (same as WORKER_WAIT_FOR_DEPS=false)."),
) -> None:
    """Wait for dependencies, then exec `celery -A <app> worker` with the runbook's CELERY_* settings."""
    import shlex

    from pmsops.errors import OperationError
    from pmsops.worker.start import (
        ROOT_HINT,
        ROOT_REFUSAL,
        TZDATA_HINT,
        check_working_directory,
        configuration_lines,
        running_as_root,
        timezone_problem,
        worker_command,
    )
    from pmsops.worker.wait import settings_from, stamp, wait_for_dependencies

    env = settings().env
    argv = worker_command(env, app, hostname)
    out = output()
    if dry_run:
        out.line(shlex.join(argv))
        finish(0)
    if running_as_root() and not allow_root:
        raise OperationError(ROOT_REFUSAL, hint=ROOT_HINT)
    check_working_directory()
    problem = timezone_problem()
    if problem:  # before the wait: Celery would only die after it, with a traceback
        raise OperationError(problem, hint=TZDATA_HINT)
    out.line("[worker] pmsops worker-start active")
    if not no_wait:
        code = wait_for_dependencies(settings_from(env), out.line)
        if code != 0:
            finish(code)
    for line in configuration_lines(argv):
        out.line(stamp(line))
    _exec(argv)


@report_options
def worker_check(
    expect_task: Optional[List[str]] = typer.Option(
        None, "--expect-task", help="Task that must be registered; repeatable (default: the pmsops.sync tasks)."
    ),
    destination: Optional[str] = typer.Option(
        None, "--destination", "-d", help="Worker to ping, or whose beacon --liveness reads (default celery@<this hostname>)."
    ),
    expect_sha256: Optional[List[str]] = typer.Option(None, "--expect-sha256", help="PATH=HEX: the file's SHA-256 must start with HEX; repeatable."),
    allow_root: bool = typer.Option(False, "--allow-root", help="Running as root is a warning, not a failure."),
    timeout: float = typer.Option(3.0, "--timeout", min=0.1, callback=finite, help="Connect and read timeout of each network step, in seconds."),
    liveness: bool = typer.Option(
        False, "--liveness", help="Cheap HEALTHCHECK mode: only read the beacon the worker keeps fresh (no broker, no Celery import)."
    ),
    max_age: Optional[float] = typer.Option(
        None, "--max-age", min=0.1, callback=finite, help="With --liveness: oldest acceptable beat in seconds (default 3 × WORKER_BEACON_INTERVAL)."
    ),
    report: ReportOptions = PLAIN,
) -> None:
    """Everything the worker container needs, in one command; --liveness is the cheap Docker HEALTHCHECK."""
    from pmsops.procedures.worker_check import liveness_check
    from pmsops.procedures.worker_check import worker_check as run

    found = (
        liveness_check(settings().env, max_age, destination)
        if liveness
        else run(settings(), expect_task, destination, allow_root, expect_sha256, timeout)
    )
    finish_results(found, "worker-check", report, title="pmsops worker-check")
