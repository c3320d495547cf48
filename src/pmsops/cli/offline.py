"""Offline commands: encode a password, lint Redis URLs, compare hashes, explain statuses."""

from __future__ import annotations

from typing import List, Optional

import typer

from pmsops.cli.common import JSON_OPTION, STRICT_OPTION, ReportOptions, finish, finish_results, output, read_secret, settings

redis_url_app = typer.Typer(help="Lint Redis URLs the way redis-py and kombu read them.", no_args_is_help=True)
PANEL = "Offline (runbook: Special Characters, Redis URL, HTTP Status Codes)"


def register(app: typer.Typer) -> None:
    app.command("encode-redis-password", rich_help_panel=PANEL)(encode_redis_password)
    app.add_typer(redis_url_app, name="redis-url", rich_help_panel=PANEL)
    app.command("compare-password-hash", rich_help_panel=PANEL)(compare_password_hash)
    app.command("explain", rich_help_panel=PANEL)(explain)
    app.command("help")(help_command)


def encode_redis_password(
    password_arg: Optional[str] = typer.Argument(None, metavar="[PASSWORD]", help="Discouraged (shell history): omit it to be prompted."),
    stdin: bool = typer.Option(False, "--stdin", help="Read the password from standard input (one trailing newline is dropped)."),
    host: Optional[str] = typer.Option(None, "--host", help="Also print REDIS_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND for this host."),
    port: int = typer.Option(6379, "--port", min=1, max=65535),
    db: int = typer.Option(0, "--db", min=0),
    fmt: str = typer.Option("text", "--format", help="text, env (export lines) or json."),
) -> None:
    """URL-encode a Redis password (runbook: "Special Characters MUST Be URL-Encoded").

    Prints urllib.parse.quote(password, safe="") and verifies that redis-py and kombu
    decode the URL back to exactly the password.
    """
    from pmsops.redaction import fingerprint, fingerprint_fields
    from pmsops.urls import encode_report

    if fmt not in ("text", "env", "json"):
        from pmsops.errors import UsageError

        raise UsageError(f"unknown --format {fmt!r}: use text, env or json")
    if host is not None and not _is_plain_host(host):
        from pmsops.errors import UsageError

        raise UsageError(
            "--host must be a host name or IP address (no scheme, user, port or path)", hint="for example: --host coolify-redis --port 6379"
        )
    password = read_secret("Redis password (input hidden)", stdin, password_arg)
    report = encode_report(password, host=host, port=port, db=db)
    finish(_render_encoded(report, fmt, fingerprint(password), fingerprint_fields(password)))


def _is_plain_host(host: str) -> bool:
    """A name, an IPv4 address or a bracketed IPv6 literal: nothing a URL would split."""
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\]", host))


def _render_encoded(report, fmt: str, shown: str, fingerprint: dict) -> int:
    """The encoded value and URLs are what the operator asked for: revealed; the password only as its fingerprint."""
    import shlex

    out = output(fmt == "json")
    problems = [f"{r.parser}: {r.problem}" for r in report.round_trip if not r.ok]
    if fmt == "json":
        out.reveal(
            __import__("json").dumps(
                {
                    "schema": "pmsops.encoded-password/v1",
                    "encoded": report.encoded,
                    "length": report.length,
                    "fingerprint": fingerprint,
                    "urls": report.urls,
                    "round_trip": {r.parser: r.ok for r in report.round_trip},
                    "problems": problems,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    elif fmt == "env":
        if report.urls:
            for name, url in report.urls.items():
                out.reveal(f"export {name}={shlex.quote(url)}")
        else:
            out.reveal(f"export REDIS_PASSWORD_ENCODED={shlex.quote(report.encoded)}")
    else:
        out.line(f"Password: {shown}")
        out.reveal(f"Encoded password: {report.encoded}")
        for name, url in report.urls.items():
            out.reveal(f"{name}={url}")
        verdict = "decodes back to the exact password with redis-py and kombu" if not problems else "ROUND TRIP FAILED"
        out.line(f"{'✓' if not problems else '✗'} round trip: {verdict}")
    for problem in problems:
        out.error(f"round trip failed with {problem}")
    return 0 if not problems else 1


@redis_url_app.command("check")
def redis_url_check(
    url: Optional[str] = typer.Argument(
        None, help="A Redis URL (quote it!). Default: REDIS_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND from the environment."
    ),
    json_mode: bool = JSON_OPTION,
    strict: bool = STRICT_OPTION,
) -> None:
    """Find what makes clients read a Redis URL differently from its author.

    Checks scheme, host, port, db, the missing ':' before a password, raw characters
    that must be encoded, and that the three Redis variables agree.
    """
    from pmsops.checks.urls import check_redis_urls

    urls = {"URL": url} if url is not None else None
    finish_results(check_redis_urls(settings(), urls), "redis-url check", ReportOptions(json_mode, strict))


def compare_password_hash(
    url: Optional[str] = typer.Option(None, "--url", help="Redis URL (default: REDIS_URL)."),
    requirepass_stdin: bool = typer.Option(
        False, "--requirepass-stdin", help="Read Redis's requirepass from standard input (at a terminal: a hidden prompt)."
    ),
    redis_conf: Optional[str] = typer.Option(None, "--redis-conf", help="Read requirepass from this redis.conf."),
    container: Optional[str] = typer.Option(None, "--container", help="Read requirepass from this Docker container (command, env or redis.conf)."),
    salt: Optional[str] = typer.Option(
        None,
        "--salt",
        help="Fingerprint salt (default: random per run, shown next to each fingerprint). Give the same --salt on another machine to compare.",
    ),
    reveal_fingerprint: bool = typer.Option(
        False, "--reveal-fingerprint", help="Show the runbook's unsalted sha256 prefix instead (reversible for weak passwords)."
    ),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Compare the URL's password (decoded as redis-py does) with requirepass by length and salted fingerprint.

    Both sides are fingerprinted with one salt, so equal fingerprints mean equal passwords.
    """
    from pmsops.cli.common import configure_fingerprints
    from pmsops.errors import UsageError
    from pmsops.passwords import compare_result, read_requirepass_file

    configure_fingerprints(salt, reveal_fingerprint)
    sources = [s for s in (requirepass_stdin, redis_conf, container) if s]
    if len(sources) != 1:
        raise UsageError("give exactly one of --requirepass-stdin, --redis-conf PATH or --container NAME")
    the_url = url or settings().require("REDIS_URL", hint="pass --url 'redis://:<PASSWORD>@host:6379/0' or export REDIS_URL")
    if redis_conf:
        requirepass, source = read_requirepass_file(redis_conf), redis_conf
    elif container:
        from pmsops.host.redis_password import find_requirepass

        found = find_requirepass(container)
        requirepass, source = found.value, f"container {container} ({found.source})"
    else:
        import sys

        # At a terminal: a hidden prompt (never echoed); piped: standard input, as the option says.
        requirepass, source = read_secret("Redis requirepass (input hidden)", not sys.stdin.isatty(), None, "requirepass"), "stdin"
    finish_results([compare_result(the_url, requirepass, source)], "compare-password-hash", ReportOptions(json_mode))


def explain(
    codes: List[str] = typer.Argument(
        None, metavar="[CODE|TOPIC]...", help="HTTP status codes or runbook topics (coolify-url, start-command); default: all."
    ),
    json_mode: bool = JSON_OPTION,
) -> None:
    """The runbook's HTTP status reference (meaning, common causes, fix) and its Coolify quirks (explain coolify-url)."""
    from pmsops.errors import UsageError
    from pmsops.http_status import STATUS_TABLE, TOPICS, lookup

    wanted: list[int] = []
    topics: list[str] = []
    for code in codes or [str(c) for c in STATUS_TABLE]:
        key = code.strip().lower().replace("_", "-")
        if key in TOPICS:
            topics.append(key)
            continue
        if not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 599:
            raise UsageError(f"not an HTTP status code or topic: {code!r}", hint=f"topics: {', '.join(sorted(TOPICS))}")
        wanted.append(int(code))
    out = output(json_mode)
    infos = [lookup(c) for c in wanted]
    if json_mode:  # the one report schema; "statuses" and "topics" keep the reference fields as they were
        from pmsops.http_status import explain_results

        finish_results(
            explain_results(wanted, topics),
            "explain",
            ReportOptions(json_mode),
            extra={
                "statuses": [vars(i) if i else {"code": c, "meaning": None} for c, i in zip(wanted, infos)],
                "topics": [{"topic": t, **TOPICS[t]} for t in topics],
            },
        )
    else:
        for code, info in zip(wanted, infos):
            if info is None:
                out.line(f"{code}  not in the runbook's table")
                continue
            out.line(f"{info.code}  {info.meaning}", style="bold")
            out.line(f"     causes: {info.causes}")
            out.line(f"     fix:    {info.fix}")
        for topic in topics:
            entry = TOPICS[topic]
            out.line(f"{entry['title']}  (runbook: {entry['section']})", style="bold")
            out.line(f"     symptom: {entry['symptom']}")
            out.line(f"     cause:   {entry['cause']}")
            out.line(f"     fix:     {entry['fix']}")
    finish(0 if all(infos) else 1)


def help_command(ctx: typer.Context, command: Optional[List[str]] = typer.Argument(None, help="The command to explain, e.g. sync trigger.")) -> None:
    """Show the help of pmsops or of a command: pmsops help sync trigger."""
    from pmsops.errors import UsageError

    root = ctx.find_root()
    group = root.command
    path = [root.info_name or "pmsops"]
    current = root
    for word in command or []:
        sub = getattr(group, "commands", {}).get(word)
        if sub is None:
            raise UsageError(f"no command {' '.join(path[1:] + [word])!r}", hint="pmsops help lists every command")
        current = sub.make_context(word, [], parent=current, resilient_parsing=True)
        group, path = sub, path + [word]
    typer.echo(current.get_help())
    finish(0)
