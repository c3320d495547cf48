"""What every command shares: global state, output, common options, exiting."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NoReturn

import typer

from pmsops import exitcodes


@dataclass
class State:
    started: float = 0.0
    """time.monotonic() when main() began: doctor's deadlines count from here."""
    debug: bool = False
    no_color: bool = False
    env_file: str | None = None


STATE = State()

def finite(value: float | None) -> float | None:
    """nan and inf pass click's range checks and would make a wait endless or a timeout crash."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


JSON_OPTION = typer.Option(False, "--json", help="Print a JSON report (schema pmsops.report/v1) instead of text.")
STRICT_OPTION = typer.Option(False, "--strict", help="Exit 1 on warnings too.")
TIMEOUT_OPTION = typer.Option(3.0, "--timeout", min=0.1, callback=finite, help="Connect and read timeout in seconds.")


def output(json_mode: bool = False):
    from pmsops.render import Output

    return Output(json_mode=json_mode, no_color=STATE.no_color)


def settings():
    from pmsops.settings import Settings

    return Settings.from_environ()


def finish(code: int) -> NoReturn:
    raise typer.Exit(code)


def finish_results(results, command: str, json_mode: bool = False, strict: bool = False, title: str | None = None, extra=None) -> NoReturn:
    """Render results and exit with the code they map to."""
    finish(output(json_mode).results(results, command=command, strict=strict, title=title, extra=extra))


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
        import getpass

        value = getpass.getpass(f"{prompt}: ")
    if value == "":
        raise UsageError(f"empty {what}", hint=f"type the {what} at the prompt, or pipe it: printf %s \"$PW\" | pmsops … --stdin")
    register_secret(value)
    return value


EXIT_CODES_HELP = f"Exit codes: {exitcodes.OK} ok, {exitcodes.FAILED} failed, {exitcodes.USAGE} bad input."
