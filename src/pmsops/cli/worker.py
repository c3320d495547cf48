"""Worker-side commands for inside the container: ``wait-for-deps``, ``worker-start``, ``worker-check``."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from pmsops.cli.common import JSON_OPTION, finish, finite, output, settings


def register(app: typer.Typer) -> None:
    app.command("wait-for-deps", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(wait_for_deps)
    app.command("worker-start")(worker_start)
    app.command("worker-check")(worker_check)


def _exec(argv: list[str]) -> None:
    """Replace this process, so signals reach the command as they would reach PID 1's child."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        from pmsops.errors import UsageError

        raise UsageError(f"cannot execute {argv[0]}: {exc.strerror}") from None


def wait_for_deps(
    ctx: typer.Context,
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, callback=finite, help="Seconds to wait in all (default WORKER_WAIT_TIMEOUT or 60)."),
    interval: Optional[float] = typer.Option(None, "--interval", min=0.05, callback=finite, help="Seconds between attempts (default WORKER_WAIT_INTERVAL or 2)."),
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
    from pmsops.worker.start import ROOT_HINT, ROOT_REFUSAL, check_working_directory, configuration_lines, running_as_root, worker_command
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
    out.line("[worker] pmsops worker-start active")
    if not no_wait:
        code = wait_for_dependencies(settings_from(env), out.line)
        if code != 0:
            finish(code)
    for line in configuration_lines(argv):
        out.line(stamp(line))
    _exec(argv)


def worker_check(
    expect_task: Optional[List[str]] = typer.Option(None, "--expect-task", help="Task that must be registered; repeatable (default: the pmsops.sync tasks)."),
    destination: Optional[str] = typer.Option(None, "--destination", "-d", help="Worker to ping (default celery@<this hostname>)."),
    expect_sha256: Optional[List[str]] = typer.Option(None, "--expect-sha256", help="PATH=HEX: the file's SHA-256 must start with HEX; repeatable."),
    allow_root: bool = typer.Option(False, "--allow-root", help="Running as root is a warning, not a failure."),
    timeout: float = typer.Option(3.0, "--timeout", min=0.1, callback=finite, help="Timeout for each network step."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Everything the worker container needs, in one command (also a Docker HEALTHCHECK)."""
    from pmsops.results import Stopwatch, worst
    from pmsops.worker.healthcheck import worker_check as run

    watch = Stopwatch()
    found = run(settings(), expect_task, destination, allow_root, expect_sha256, timeout)
    out = output(json_mode)
    code = out.results(found, "worker-check")
    failed = [r.name for r in found if r.status == "fail"]
    verdict = worst(found).value.upper()
    out.line(f"worker-check: {verdict} — {len(found)} checks in {watch.ms / 1000:.2f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    finish(code)
