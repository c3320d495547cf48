"""Entry point: global options, command registration, and the one error handler.

``main(argv)`` returns an exit code and never lets a traceback out unless
``--debug`` is given; even then the traceback is redacted.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from pmsops import exitcodes
from pmsops.cli.common import RunState, complete_context, state
from pmsops.cli.lazy import LazyGroup

app = typer.Typer(
    name="pmsops",
    help=(
        "The channel-manager operations runbook as commands: Redis URLs, live checks, the worker, syncs, smoke tests.\n\n"
        "Start here: pmsops doctor (every check at once) · pmsops smoke (the Quick Smoke, a CI gate) · "
        "pmsops top (the sync system live) · pmsops report (a bundle for the incident). "
        "Point it at a deployment: --env-file FILE or pmsops context add. No stack at hand: pmsops demo. "
        "One command's help and the variables it reads: pmsops help COMMAND.\n\n"
        "Global options (--env-file, --context, --debug, --no-color) work before or after the command. "
        "Exit codes: 0 ok (warnings allowed), 1 failed (or warned, with --strict), 2 bad input or nothing checked, 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=LazyGroup,  # commands are imported and built when used (pmsops.cli.lazy): start-up as light as Typer
)

GLOBAL_FLAGS = ("--debug", "--no-color", "--reveal-fingerprint")
GLOBAL_VALUED = ("--env-file", "--context", "--fingerprint-salt")
"""Options of the root command that may also be written after the command (they are moved in front)."""


def _version(value: bool) -> None:
    if value:
        from pmsops import __version__

        typer.echo(f"pmsops {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    env_file: Optional[str] = typer.Option(
        None,
        "--env-file",
        metavar="PATH",
        envvar="PMSOPS_ENV_FILE",
        show_envvar=True,
        help="Load a shell-style env file (export K=V) without executing it; it beats the process environment.",
    ),
    context: Optional[str] = typer.Option(
        None, "--context", metavar="NAME", help="Use the env file of this context (pmsops context list).", autocompletion=complete_context
    ),
    debug: bool = typer.Option(False, "--debug", help="Show (redacted) tracebacks."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (NO_COLOR and non-TTY output also turn them off)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    fingerprint_salt: Optional[str] = typer.Option(
        None,
        "--fingerprint-salt",
        metavar="SALT",
        help=(
            "Salt every fingerprint with SALT (default: random per run; env PMSOPS_FINGERPRINT_SALT). Use one SALT on two machines to compare their"
            " fingerprints."
        ),
    ),
    reveal_fingerprint: bool = typer.Option(
        False,
        "--reveal-fingerprint",
        help=(
            'Show the runbook\'s unsalted sha256 prefix (echo -n "$PW" | sha256sum | cut -c1-16) instead of salted fingerprints: reversible for weak'
            " passwords."
        ),
    ),
) -> None:
    """Global options may come before or after the command: pmsops doctor --env-file /root/pms_env.sh."""

    run = ctx.obj if isinstance(ctx.obj, RunState) else RunState()
    ctx.obj = run
    run.debug = debug or run.debug
    run.no_color = no_color or bool(os.environ.get("NO_COLOR"))
    if ctx.resilient_parsing:  # shell completion: read nothing
        return
    from pmsops.contexts import select

    # PMSOPS_ENV_FILE arrives through envvar= above; contexts.select orders it after --context.
    explicit = env_file if ctx.get_parameter_source("env_file").name != "ENVIRONMENT" else None
    chosen = select(explicit, context, os.environ)
    run.context, run.env_source = chosen.context, chosen.source
    if chosen.env_file:
        apply_env_file(chosen.env_file, run)
    from pmsops.cli.common import configure_fingerprints

    # The env file is not in os.environ: hand its PMSOPS_FINGERPRINT_SALT / PMSOPS_REVEAL_FINGERPRINT over explicitly.
    environ = {**os.environ, **run.env_values}
    salt = fingerprint_salt if fingerprint_salt is not None else (environ.get("PMSOPS_FINGERPRINT_SALT") or "").strip() or None
    reveal = reveal_fingerprint or (environ.get("PMSOPS_REVEAL_FINGERPRINT", "").strip().lower() in ("1", "true", "yes"))
    configure_fingerprints(salt, reveal, start=True)


TLS_TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
"""The CA an env file names (a sandbox behind its nginx, a private CA in front of the API): httpx and ssl read these
from the process environment, so they are the one part of an env file that goes there (as everywhere, the env file's
value beats the shell's: a machine-wide SSL_CERT_FILE must not hide the CA the deployment's env file names)."""


def apply_env_file(path: str, run: RunState | None = None) -> None:
    """Read ``path`` into this run's state (env file beats process environment; ``os.environ`` is left alone)."""
    from pmsops.cli.common import output
    from pmsops.envfile import load_env_file
    from pmsops.settings import register_environment_secrets

    run = run or state()
    loaded = load_env_file(path, base=os.environ)
    register_environment_secrets(loaded.values)
    run.env_values.update(loaded.values)
    run.env_file = path
    for name in TLS_TRUST_VARIABLES:  # read by the TLS layer itself (httpx, ssl), from the process environment only
        if loaded.values.get(name):
            os.environ[name] = loaded.values[name]
    if loaded.skipped:
        lines = ", ".join(str(n) for n in loaded.skipped[:10])
        output().progress(f"! {path}: skipped {len(loaded.skipped)} line(s) that are not assignments (line {lines}); nothing in it is executed")


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options written after the command in front of it (``check db --no-color``).

    Only exact global option names before a ``--`` move; ``--env-file`` and
    ``--context`` take their value along (``--env-file=F`` too).
    """
    end = args.index("--") if "--" in args else len(args)
    head, moved, i = [], [], 0
    while i < end:
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS:
            moved.append(arg)
        elif name in GLOBAL_VALUED:
            moved.append(arg)
            if "=" not in arg and i + 1 < end:
                moved.append(args[i + 1])
                i += 1
        else:
            head.append(arg)
        i += 1
    return moved + head + args[end:]


def _report_unexpected(exc: BaseException, run: RunState) -> int:
    from pmsops.render import Output, traceback_text

    out = Output(no_color=run.no_color, context=run.context)
    if run.debug:
        sys.stderr.write(traceback_text(exc))
    message = str(exc) or type(exc).__name__
    out.error(f"{type(exc).__name__}: {message}", hint=None if run.debug else "re-run with --debug for the (redacted) traceback")
    return exitcodes.FAILED


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts) of the click Typer runs on.

    Typer ≥ 0.2x ships its own copy of click (``typer._click``) whose exceptions are
    not the ``click`` package's: catch both, or a bad option becomes a crash report.
    """
    usage: list[type] = []
    aborts: list[type] = [typer.Abort]
    from pmsops.internals import vendored_click_exception

    vendored_exception = vendored_click_exception()
    vendored = vendored_exception is not None  # None: an older Typer that uses click itself
    if vendored_exception is not None:
        usage.append(vendored_exception)
    click = sys.modules.get("click")  # only code that imported click can raise its exceptions
    if click is None and not vendored:
        import click
    if click is not None:
        usage.append(click.ClickException)
        aborts.append(click.exceptions.Abort)
    return tuple(usage), tuple(aborts)


def _once(message: str) -> str:
    """Each sentence once: Typer and click may both append "Did you mean 'doctor'?"."""
    import re

    seen: list[str] = []
    for sentence in re.split(r"(?<=[.?!])\s+", message.strip()):
        if sentence not in seen:
            seen.append(sentence)
    return " ".join(seen)


def _report_click_error(exc: Exception, run: RunState) -> int:
    """A click usage error as one redacted line plus a hint; its exit code (2)."""
    from pmsops.render import Output

    if type(exc).__name__ == "NoArgsIsHelpError":
        text = exc.format_message()  # type: ignore[attr-defined]
        if text.strip():  # older click puts the help in the message; Typer has printed it already
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return getattr(exc, "exit_code", exitcodes.USAGE)
    ctx = getattr(exc, "ctx", None)
    hint = f"see {ctx.command_path} --help" if ctx is not None else "see pmsops --help"
    if ctx is not None and ctx.parent is not None and not hasattr(ctx.command, "commands"):
        hint = f"usage: {ctx.get_usage().removeprefix('Usage: ').strip()} ({hint})"  # the sub-command's usage, not the top-level one
    Output(no_color=run.no_color, context=run.context).error(_once(exc.format_message()), hint)  # type: ignore[attr-defined]
    return getattr(exc, "exit_code", exitcodes.USAGE)


def _json_requested(args: list[str]) -> bool:
    """``--json`` among the options (before a ``--``), and not a help request."""
    head = args[: args.index("--")] if "--" in args else args
    return "--json" in head and not ({"--help", "-h"} & set(head))


def _junit_requested(args: list[str]) -> str | None:
    """The ``--junit FILE`` among the options (before a ``--``), if any."""
    head = args[: args.index("--")] if "--" in args else args
    for i, arg in enumerate(head):
        if arg == "--junit" and i + 1 < len(head):
            return head[i + 1]
        if arg.startswith("--junit="):
            return arg.split("=", 1)[1]
    return None


def _write_error_junit(path: str, command: str, error: dict) -> None:
    """A command that ended in an error before its results (an API that redirected a POST, a proxy's 502) still
    leaves its JUnit file: CI reads a failed testcase with the error, never a missing file."""
    from pmsops import results
    from pmsops.cli.common import write_junit
    from pmsops.errors import PmsopsError

    try:
        write_junit(path, [results.fail(command.replace(" ", "-"), str(error["message"]), hint=error.get("hint"))], command)
    except PmsopsError:
        pass  # an unusable target was refused before the command ran; its line is on stderr already


def _command_name(args: list[str]) -> str:
    """The command path in ``args`` ("connections list"), found by walking the click tree."""
    group = typer.main.get_command(app)
    words: list[str] = []
    for arg in args:
        commands = getattr(group, "commands", None)
        if not commands:
            break
        if arg in commands:
            words.append(arg)
            group = commands[arg]
        elif words and not arg.startswith("-"):
            break  # an argument of the command, not a sub-command
    return " ".join(words) or "pmsops"


def _error_kind(exc: BaseException) -> str:
    from pmsops.errors import DependencyError, OperationError, UsageError

    for kind, cls in (("usage", UsageError), ("dependency", DependencyError), ("operation", OperationError)):
        if isinstance(exc, cls):
            return kind
    return "unexpected"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv``; return the exit code.

    With ``--json``, every exit writes exactly one report object on stdout: the
    command's own, or (error, usage error, a command that printed nothing) one made
    here with ``exit_code`` and ``error``.
    """
    import time

    from pmsops import runclock  # not the renderer: pmsops --help never needs it

    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    run = RunState(started=time.monotonic())
    runclock.STARTED = run.started
    runclock.STDOUT_USED = runclock.JUNIT_WRITTEN = False
    error: dict[str, str | None] = {}
    try:
        code = _run(args, error, run)
        junit = _junit_requested(args)
        if junit and code and error.get("message") and not runclock.JUNIT_WRITTEN:
            _write_error_junit(junit, _command_name(args), error)
        if _json_requested(args) and not runclock.STDOUT_USED:
            from pmsops import render
            from pmsops.redaction import redact

            message = error.get("message")
            report = render.error_report(
                _command_name(args),
                code,
                error.get("kind"),
                redact(message) if message else None,
                redact(error["hint"]) if error.get("hint") else None,
                run.context,
            )
            render.Output().json(report)
    finally:
        runclock.STARTED = None  # library callers after us get their own timing, not this command's
    return code


def _run(args: list[str], error: dict, run: RunState) -> int:
    """Dispatch ``args``; errors become one line on stderr and are noted in ``error``."""
    from pmsops.errors import PmsopsError

    click_errors, aborts = _click_exception_types()
    run.debug = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    run.no_color = "--no-color" in args[: args.index("--") if "--" in args else len(args)]
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="pmsops", standalone_mode=False, obj=run)
        return rv if isinstance(rv, int) else exitcodes.OK
    except PmsopsError as exc:
        from pmsops.render import Output

        if run.debug:
            from pmsops.render import traceback_text

            sys.stderr.write(traceback_text(exc))
        Output(no_color=run.no_color, context=run.context).error(exc.message, exc.hint)
        error.update(kind=_error_kind(exc), message=exc.message, hint=exc.hint)
        return exc.exit_code
    except aborts:
        sys.stderr.write("aborted\n")
        error.update(kind="interrupted", message="aborted")
        return 130
    except click_errors as exc:
        ctx = getattr(exc, "ctx", None)
        error.update(
            kind="usage",
            message=_once(exc.format_message()) if hasattr(exc, "format_message") else str(exc),
            hint=f"see {ctx.command_path} --help" if ctx is not None else "see pmsops --help",
        )
        return _report_click_error(exc, run)
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        error.update(kind="interrupted", message="interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into one line
        error.update(kind="unexpected", message=f"{type(exc).__name__}: {exc}")
        return _report_unexpected(exc, run)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
