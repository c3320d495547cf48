"""What every command shares: global state, output, common options, exiting."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import NoReturn, Optional

import typer

from pmsops import exitcodes


@dataclass
class RunState:
    """Per-run state, carried as the root ``typer.Context``'s ``obj`` (never a module global).

    The env file is read into ``env_values`` and overlaid on the process environment
    when settings are read; it is not written into ``os.environ`` (only the two
    commands that hand the environment to another program do that, explicitly).
    """

    started: float = 0.0
    """time.monotonic() when main() began: doctor's deadlines count from here."""
    debug: bool = False
    no_color: bool = False
    env_file: str | None = None
    env_source: str = "environment"
    """Where ``env_file`` came from: --env-file, --context, PMSOPS_CONTEXT, PMSOPS_ENV_FILE or context use."""
    env_values: dict[str, str] = field(default_factory=dict)
    context: str | None = None
    """The active context's name (shown in every report header), or None."""

    def environ(self) -> dict[str, str]:
        """The process environment with the env file on top (env file beats environment)."""
        import os

        return {**os.environ, **self.env_values}


_FALLBACK = RunState()


def state() -> RunState:
    """This run's :class:`RunState` (from the click context; a default outside a run)."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        obj = ctx.find_root().obj
        if isinstance(obj, RunState):
            return obj
    return _FALLBACK


def finite(value: float | None) -> float | None:
    """nan and inf pass click's range checks and would make a wait endless or a timeout crash."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


# --- the shared option declarations (one name per concept; README "Option conventions") -------------------

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (schema pmsops.report/v1) instead of text.", rich_help_panel="Output")
STRICT_OPTION = typer.Option(False, "--strict", help="Warnings fail too (exit 1).", rich_help_panel="Output")
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="Print nothing; the exit code is the answer.", rich_help_panel="Output")
JUNIT_OPTION = typer.Option(
    None, "--junit", metavar="FILE", help="Also write a JUnit XML report (one testcase per check) for CI.", rich_help_panel="Output"
)
TIMEOUT_OPTION = typer.Option(3.0, "--timeout", min=0.1, callback=finite, help="Connect and read timeout of each network call, in seconds.")
HTTP_TIMEOUT_OPTION = typer.Option(10.0, "--timeout", min=0.1, callback=finite, help="Connect and read timeout of each HTTP call, in seconds.")
API_OPTION = typer.Option(None, "--url", "--api", help="API base URL (default PMS_API_URL, API, API_BASE_URL or BACKEND_URL).")
WAIT_OPTION = typer.Option(60.0, "--wait", min=1, callback=finite, metavar="SECONDS", help="How long to wait for the sync to reach a final status.")


@dataclass(frozen=True)
class ReportOptions:
    """How a command reports: ``--json``, ``--strict``, ``--quiet``, ``--junit FILE``, travelling as one value."""

    json_mode: bool = False
    strict: bool = False
    quiet: bool = False
    junit: str | None = None


PLAIN = ReportOptions()


def fold_options(parameter: str, make, declared: tuple):
    """A decorator that gives a command options declared once and hands them to it as one value.

    Why: many commands take the same group of options (how to report; which Celery workers to
    ask); as with sqlite-utils' shared option decorators, each group is declared in one place
    instead of in every signature. Typer reads ``__signature__``: the command's ``parameter``
    is replaced by the group's options, which the wrapper folds back into ``make(**values)``.
    ``declared`` is ``(name, type, typer.Option)`` per option, in help order.
    """

    def decorate(command):
        import functools
        import inspect
        from typing import get_type_hints

        signature = inspect.signature(command)
        hints = get_type_hints(command)  # resolved in the command's own module (its annotations are strings)
        kept = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values() if p.name != parameter]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind) for name, kind, option in declared]
        names = [name for name, _, _ in declared]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in names if name in kwargs}
            return command(*args, **{parameter: make(**values)}, **kwargs)

        del wrapper.__wrapped__  # typer and inspect must see the folded signature below, not the command's own
        wrapper.__signature__ = signature.replace(parameters=kept + added)
        wrapper.__annotations__ = {p.name: p.annotation for p in kept + added}
        return wrapper

    return decorate


report_options = fold_options(
    "report",
    ReportOptions,
    (("json_mode", bool, JSON_OPTION), ("strict", bool, STRICT_OPTION), ("quiet", bool, QUIET_OPTION), ("junit", Optional[str], JUNIT_OPTION)),
)
"""``--json``, ``--strict``, ``--quiet``, ``--junit FILE``, handed to the command as ``report: ReportOptions``."""


def _uuid_type():
    import click

    class ConnectionId(click.ParamType):
        name = "UUID"

        def convert(self, value, param, ctx):
            from pmsops.ids import parse_uuid

            if value is None or isinstance(value, str) and value == "":
                return value
            parsed = parse_uuid(value)
            if parsed is None:
                self.fail(f"{value!r} is not a UUID (list connections with: pmsops connections list)", param, ctx)
            return str(parsed)

    class SyncType(click.Choice):
        def __init__(self) -> None:
            super().__init__(["full", "availability", "pricing", "bookings"])

    return ConnectionId(), SyncType()


CONNECTION_ID, SYNC_TYPE = _uuid_type()
"""Click parameter types for a connection UUID and a sync type: checked once, at parse time."""


def connection_argument(help_text: str = "Channel connection UUID (default: $CID).") -> typer.models.ArgumentInfo:
    return typer.Argument(None, click_type=CONNECTION_ID, metavar="[CONNECTION_ID]", help=help_text, show_default=False)


SYNC_TYPE_OPTION = typer.Option("full", "--type", "-t", click_type=SYNC_TYPE, help="Sync type.")


def connection_id(value: str | None) -> str:
    """The given connection id, else ``CID`` from the environment (checked as a UUID), else bad input."""
    from pmsops.errors import UsageError
    from pmsops.ids import parse_uuid

    if value:
        return value
    cid = settings().get("CID")
    if not cid:
        raise UsageError("no connection id: pass CONNECTION_ID or set CID", hint="list connections with: pmsops connections list")
    parsed = parse_uuid(cid)
    if parsed is None:
        raise UsageError(f"CID={cid!r} is not a UUID", hint="list connections with: pmsops connections list")
    return str(parsed)


def api_client(api: str | None, timeout: float, budget: float | None = None):
    """An API client for this run: the base URL and a token (TOKEN, or the password grant); ``budget``: how long it
    may wait out rate limits (a command's --wait; default its timeout)."""
    from pmsops.api.client import ApiClient
    from pmsops.api.token import obtain

    env = settings()
    base = api or env.require("PMS_API_URL")
    return ApiClient(base, obtain(env, timeout).token, timeout, env.get("AGENCY_ID"), budget=budget)


def output(json_mode: bool = False, quiet: bool = False):
    from pmsops.render import Output

    run = state()
    return Output(json_mode=json_mode, no_color=run.no_color, quiet=quiet, context=run.context)


def settings():
    from pmsops.settings import Settings

    return Settings.from_environ(state().environ())


def export_environment() -> None:
    """Put the env file into ``os.environ``: only for a command that hands the environment to another
    program (``worker-start`` execs Celery) or to a library that reads it (the Celery app of ``sync run``)."""
    import os

    os.environ.update(state().env_values)


def finish(code: int) -> NoReturn:
    raise typer.Exit(code)


def finish_results(results, command: str, report: ReportOptions = PLAIN, title: str | None = None, extra=None) -> NoReturn:
    """Render results and exit with the code they map to."""
    import time

    items = list(results)
    started = state().started
    if report.junit:
        write_junit(report.junit, items, command, report.strict, time.monotonic() - started if started else None)
    seconds = time.monotonic() - started if started else None  # wall time of the command, not a sum of the checks
    finish(output(report.json_mode, report.quiet).results(items, command=command, strict=report.strict, title=title, extra=extra, seconds=seconds))


def check_report_target(path: str | None, what: str = "report") -> None:
    """Refuse an unusable ``--junit``/``--save`` target before anything runs (so nothing is printed first):
    an existing link, FIFO, device or directory, or a missing directory. The write itself checks again."""
    import os
    import stat

    from pmsops.errors import UsageError
    from pmsops.safefile import kind

    if not path:
        return
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"cannot write {what} {path}: {parent} is not a directory") from None
        return
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"refusing to write {what} {path}: it is {kind(info.st_mode)} (only a regular file is replaced)")


def write_junit(
    path: str, items, command: str, strict: bool = False, seconds: float | None = None, context: str | None = None, unfinished=()
) -> None:
    """A JUnit report of ``items`` (one testcase per result), mode 0600, never through a link.

    The suite is named after the command and the context (``--suite-name``, the active
    context, ``PMSOPS_CONTEXT``, else the API host), so two runs in one CI job differ."""
    from pmsops.procedures.smoke import SmokeRun, junit_xml, suite_context
    from pmsops.safefile import write_text

    context = context or suite_context(settings(), state().context)
    from pmsops import runclock

    run = SmokeRun(results=list(items), elapsed_ms=seconds * 1000 if seconds is not None else None, unfinished=list(unfinished))
    write_text(path, junit_xml(run, context, strict, command=command), "report")
    runclock.JUNIT_WRITTEN = True


def stream(
    command: str,
    slots,
    run,
    report: ReportOptions = PLAIN,
    title: str | None = None,
    labels: dict[str, str] | None = None,
    extra=None,
    junit_context: str | None = None,
) -> NoReturn:
    """Run a multi-check command, showing each result the moment it is known; exit with its code.

    ``run(collector)`` is the one library call. Ctrl-C stops the wait: what was found
    is kept (printed, in the JSON and the JUnit file) with a summary, exit 130.
    """
    import time

    from pmsops import exitcodes
    from pmsops.results import Collector, exit_code

    check_report_target(report.junit)
    out = output(report.json_mode, report.quiet)
    collector = Collector(slots)
    interrupted = False
    out.header(title)
    with out.live(collector, labels):
        try:
            run(collector)
        except KeyboardInterrupt:
            interrupted = True
    items = collector.results
    seconds = time.monotonic() - collector.started
    code = exitcodes.INTERRUPTED if interrupted else exit_code(items, strict=report.strict)
    pending = [labels.get(p, p) if labels else p for p in collector.pending] if interrupted else []
    if report.junit:
        write_junit(report.junit, items, command, report.strict, seconds, junit_context, unfinished=pending)
    if report.json_mode:
        out.report_json(items, command, code, seconds, extra() if callable(extra) else extra, interrupted, pending)
    elif len(items) > 1 or interrupted or not items:
        out.summary(items, seconds, interrupted, pending)
    finish(code)


def check_one(command: str, name: str, fn, timeout: float, report: ReportOptions = PLAIN) -> NoReturn:
    """One bounded check, with a spinner while it waits on a terminal and Ctrl-C kept (exit 130)."""
    from pmsops.runner import Job, check_deadline, run_concurrently

    job = Job(name, fn, check_deadline(name, timeout))
    stream(command, (name,), lambda collector: run_concurrently([job], collector), report)


def configure_fingerprints(salt: str | None, reveal: bool, start: bool = False) -> None:
    """``--fingerprint-salt`` / ``--reveal-fingerprint`` (global, ``start``: a new invocation, or per command).

    A new invocation forgets the previous one's salt: a random salt is per invocation.
    A bad salt is bad input (exit 2).
    """
    from pmsops.redaction import fingerprint_salt, set_fingerprint_salt, set_reveal_fingerprint

    if start or salt is not None:
        set_fingerprint_salt(salt)
    if start or reveal:
        set_reveal_fingerprint(True if reveal else None)
    fingerprint_salt()  # a bad PMSOPS_FINGERPRINT_SALT is bad input now, not a failed check later


def read_secret(prompt: str, from_stdin: bool, positional: str | None = None, what: str = "password") -> str:
    """A secret from stdin, a hidden prompt, or (discouraged) a positional argument."""
    from pmsops.errors import UsageError
    from pmsops.redaction import register_secret

    if positional is not None:
        output().progress(f"! warning: a {what} given as an argument stays in your shell history and in ps; prefer the prompt or --stdin")
        value = positional
    elif from_stdin or not sys.stdin.isatty():
        value = sys.stdin.read()
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    else:
        value = _hidden_prompt(f"{prompt}: ")
    if value == "":
        raise UsageError(f"empty {what}", hint=f'type the {what} at the prompt, or pipe it: printf %s "$PW" | pmsops … --stdin')
    register_secret(value)
    return value


def _hidden_prompt(prompt: str) -> str:
    """Read a line from the terminal without echoing it (the prompt goes to the terminal, not stdout)."""
    import getpass

    return getpass.getpass(prompt)


EXIT_CODES_HELP = f"Exit codes: {exitcodes.OK} ok, {exitcodes.FAILED} failed, {exitcodes.USAGE} bad input."


def complete_context(incomplete: str) -> list[str]:
    """Shell completion of context names: the stored ones (a store that cannot be read completes nothing)."""
    from pmsops.contexts import load
    from pmsops.errors import PmsopsError

    import os

    try:
        names = load(os.environ).contexts
    except PmsopsError:
        return []
    return sorted(name for name in names if name.startswith(incomplete))
