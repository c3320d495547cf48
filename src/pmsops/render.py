"""Turn results into text for people (Rich) or JSON for machines, and nothing else.

Every string passes through :func:`pmsops.redaction.redact` here; the only way
around it is :meth:`Output.reveal`, for the one value an operator explicitly asked
for (``encode-redis-password``, ``token --print``).

JSON schema (``--json``), stable and documented in the README::

    {"schema": "pmsops.report/v1", "command": "check redis", "status": "ok|warn|fail|skip",
     "exit_code": 0, "duration_ms": 12.3, "error": null,
     "results": [{"name", "status", "summary", "hint", "notes", "details", "duration_ms"}]}

Every exit of a command run with ``--json`` writes exactly one such object on stdout,
errors included (exit 1 or 2: ``"status": "fail"``, ``"results": []`` and
``"error": {"type": "usage|operation|dependency|unexpected|interrupted", "message", "hint"}``),
so ``pmsops … --json | jq -e '.status=="ok"'`` cannot pass on empty input.
The top-level ``duration_ms`` is the command's elapsed wall time (from the start of
``main``), not a sum; an executed result that did not time itself carries that
elapsed time too (an upper bound), so no executed result has ``null``; only
``skip`` results may.

JUnit text goes through :func:`xml_text`: only characters XML 1.0 allows, ANSI
escapes removed, other control characters written visibly as ``\\xNN``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any, Iterable

from pmsops.redaction import redact as _redact
from pmsops.redaction import redact_obj
from pmsops.visible import visible, visible_obj
from pmsops import runclock  # STARTED and STDOUT_USED (set by the CLI's main())
from pmsops.results import Collector, Result, Status, counts, exit_code, seconds_text, summary_line, worst

SCHEMA = "pmsops.report/v1"

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Only characters XML 1.0 allows: ANSI escapes dropped, other control characters (and
    lone surrogates, U+FFFE/U+FFFF) shown as ``\\xNN``/``\\uNNNN``, so one stray byte in an error
    cannot make a CI system drop the whole report. Escaping of ``<&>"`` is the caller's."""
    text = _ANSI.sub("", text)
    text = _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)
    return visible(text)  # bidi overrides and zero-width characters too


def redact(text: str) -> str:
    """What may be shown of ``text``: secrets masked, then steering characters (ESC, bidi, zero-width, lone
    surrogates) written as visible escapes, so outside data never drives the terminal (:mod:`pmsops.visible`)."""
    return visible(_redact(text))


def elapsed_ms() -> float | None:
    return None if runclock.STARTED is None else (time.monotonic() - runclock.STARTED) * 1000


SYMBOLS = {Status.OK: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-"}
STYLES = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "dim"}
WORDS = {Status.OK: "ok", Status.WARN: "warning", Status.FAIL: "FAILED", Status.SKIP: "skipped"}
"""The status as a coloured word after the name (the symbol alone is easy to miss)."""


def _encoding_supports(stream: Any, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


class Output:
    """Where a command writes: results and lines to stdout, errors and progress to stderr."""

    def __init__(self, json_mode: bool = False, no_color: bool = False, quiet: bool = False, context: str | None = None) -> None:
        self.json_mode = json_mode
        self.no_color = no_color  # NO_COLOR is read where the run starts (pmsops.cli.main)
        self.quiet = quiet
        """``--quiet``: nothing on stdout, the exit code says it all (errors still go to stderr)."""
        self.context = context
        """The active context's name, shown in every report header (None: no context in use)."""
        self._console = None
        self._err_console = None
        self._notes_seen: set[str] = set()

    def _make_console(self, stderr: bool):
        from rich.console import Console

        # Rich's no_color drops colours but still writes bold/dim escapes; without a
        # colour system it writes none at all (https://no-color.org: no ANSI codes).
        return Console(
            stderr=stderr,
            no_color=self.no_color,
            color_system=None if self.no_color else "auto",
            highlight=False,
            soft_wrap=True,  # piped: one result, one line (grep-able); on a terminal _print wraps at word boundaries
            emoji=False,
            markup=False,
            force_terminal=None,
        )

    @property
    def console(self):
        if self._console is None:
            self._console = self._make_console(stderr=False)
        return self._console

    @property
    def err_console(self):
        if self._err_console is None:
            self._err_console = self._make_console(stderr=True)
        return self._err_console

    # plain lines -------------------------------------------------------------
    def line(self, text: str = "", style: str | None = None) -> None:
        if self.json_mode or self.quiet:
            return
        from rich.text import Text

        self._print(Text(redact(text), style=style or ""), indent=_indent_of(text))

    def _print(self, text, indent: int = 0, console=None) -> None:
        """Print one logical line; on a terminal wrapped at word boundaries, continuation lines indented.

        Rich's soft wrap lets the terminal cut words at the last column; wrapping here
        keeps every physical line within the width and whole words together. One
        ``print`` call per logical line, so a live area below is redrawn once.
        """
        console = console or self.console
        if not console.is_terminal or console.width < 20:
            console.print(text)
            return
        from rich.text import Text

        width = console.width
        pad = min(indent + 2, width // 2)
        lines = list(text.wrap(console, width, overflow="fold"))
        out = Text()
        if lines:
            first = lines[0]
            first.rstrip()
            out.append_text(first)
            rest = Text(" ").join(lines[1:]) if len(lines) > 1 else None
            if rest is not None:
                for piece in rest.wrap(console, width - pad, overflow="fold"):
                    piece.rstrip()
                    out.append("\n" + " " * pad)
                    out.append_text(piece)
        console.print(out, soft_wrap=True)

    def progress(self, text: str) -> None:
        """Progress and warnings go to stderr so stdout stays parseable."""
        if self.quiet:
            return
        from rich.text import Text

        self._print(Text(redact(text)), indent=_indent_of(text), console=self.err_console)

    def reveal(self, text: str) -> None:
        """Write a value the operator explicitly asked for, unredacted, alone on stdout (no steering character:
        a token comes from the API)."""
        runclock.STDOUT_USED = True
        sys.stdout.write(visible(text) + "\n")
        sys.stdout.flush()

    def block(self, text: str) -> None:
        """Write machine text (metrics, a rule file) to stdout as it is, but redacted and with no steering character."""
        text = visible(redact(text))
        runclock.STDOUT_USED = True
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def json(self, payload: Any) -> None:
        text = json.dumps(visible_obj(redact_obj(payload)), ensure_ascii=False, indent=2, default=str) + "\n"
        runclock.STDOUT_USED = True  # only once the text exists: a payload that cannot be written still gets the error object
        sys.stdout.write(text)
        sys.stdout.flush()

    def error(self, message: str, hint: str | None = None) -> None:
        """One error line (naming the active context, so an error is never read as another deployment's) and its hint."""
        symbol = "✗" if _encoding_supports(sys.stderr, "✗") else "x"
        where = f" (context {self.context})" if self.context else ""
        self.err_console.print(f"{symbol} error{where}: {redact(message)}", style="red")
        if hint:
            self.err_console.print(f"  → {redact(hint)}", style="dim")

    # results ------------------------------------------------------------------
    def header(self, title: str | None) -> None:
        """The report header: the title and, when one is in use, the active context."""
        if self.json_mode or self.quiet or not (title or self.context):
            return
        from rich.text import Text

        text = Text(redact(title or ""), style="bold")
        if self.context:
            text.append(("  " if title else "") + f"context: {redact(self.context)}", style="magenta")
        self._print(text)

    def result(self, result: Result) -> None:
        """One result: status word, name, summary, duration; its notes and hint below."""
        if self.json_mode or self.quiet:
            return
        from rich.text import Text

        ascii_only = not _encoding_supports(self.console.file, "✓✗→")
        symbol = SYMBOLS[result.status]
        if ascii_only:
            symbol = {"✓": "ok", "✗": "x", "!": "!", "-": "-"}[symbol]
        line = Text()
        line.append(f"{symbol} ", style=STYLES[result.status])
        line.append(redact(result.label or result.name), style="bold")
        if result.status is not Status.OK:
            line.append(f" {WORDS[result.status]}", style=STYLES[result.status])
        line.append("  " + redact(result.summary))
        if result.duration_ms is not None:
            line.append(f"  ({_duration(result.duration_ms)})", style="dim")
        self._print(line, indent=2)
        shown_before = set(self._notes_seen)
        for note in result.notes:
            if note in shown_before:  # the same note under three URLs: once (a result's own rows all stay)
                continue
            self._notes_seen.add(note)
            self._print(Text("    " + redact(note)), indent=4)
        if result.hint and result.status in (Status.FAIL, Status.WARN, Status.SKIP):
            arrow = "->" if ascii_only else "→"
            for hint_line in redact(result.hint).splitlines():
                if hint_line in self._notes_seen:  # the same advice once per run, not under every result
                    continue
                self._notes_seen.add(hint_line)
                self._print(Text(f"    {arrow} {hint_line}", style="cyan"), indent=6)

    def summary(self, items: list[Result], seconds: float, interrupted: bool = False, pending: Iterable[str] = ()) -> None:
        """The last line of a multi-check command: ``3 ok, 1 warning, 1 failed in 3.2 s: db, celery``."""
        if self.json_mode or self.quiet:
            return
        from rich.text import Text

        status = worst(items) if items else Status.SKIP
        self._print(Text(summary_line(items, seconds, interrupted, pending), style="bold " + STYLES[status]), indent=2)

    def report_json(
        self,
        items: list[Result],
        command: str,
        code: int,
        seconds: float | None = None,
        extra: dict[str, Any] | None = None,
        interrupted: bool = False,
        pending: Iterable[str] = (),
    ) -> None:
        """The one JSON object of a result-producing command."""
        wall = elapsed_ms()
        total = wall if wall is not None else (seconds * 1000 if seconds is not None else sum(r.duration_ms or 0 for r in items))
        rows = []
        for r in items:
            row = r.to_dict()
            if row.get("duration_ms") is None and r.status != Status.SKIP:
                row["duration_ms"] = round(total, 1)  # executed but not timed on its own: the command's time bounds it
            rows.append(row)
        payload: dict[str, Any] = {
            "schema": SCHEMA,
            "command": command,
            "status": worst(items).value if items else Status.SKIP.value,
            "exit_code": code,
            "duration_ms": round(total, 1),
            "error": None,
            "counts": counts(items),
            "results": rows,
        }
        if self.context:
            payload["context_name"] = self.context
        if interrupted:  # a script's gate (jq -e '.status=="ok"') must not pass an interrupted run
            payload["status"] = Status.FAIL.value
            payload["error"] = {"type": "interrupted", "message": "interrupted before every check finished", "hint": None}
            payload["interrupted"] = True
            payload["not_finished"] = list(pending)
        if extra:
            payload.update(extra)
        self.json(payload)

    def results(
        self,
        results: Iterable[Result],
        command: str,
        strict: bool = False,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        seconds: float | None = None,
    ) -> int:
        """Render ``results`` (and a summary line when there are several) and return the exit code they map to."""
        items = list(results)
        code = exit_code(items, strict=strict)
        if self.json_mode:
            self.report_json(items, command, code, seconds, extra)
            return code
        self.header(title)
        for result in items:
            self.result(result)
        if len(items) > 1:
            self.summary(items, seconds if seconds is not None else sum(r.duration_ms or 0 for r in items) / 1000)
        return code

    def live(self, collector: Collector, labels: dict[str, str] | None = None) -> "LiveReport":
        """Stream ``collector``'s results as they are released (see :class:`LiveReport`)."""
        return LiveReport(self, collector, labels or {})


class LiveReport:
    """Results printed the moment they are known; what is still running shown below them.

    On a terminal a Rich ``Live`` area (on stdout, removed when done) shows a spinner,
    the elapsed time and one in-place progress line per operation for each running
    slot; finished results print above it. Piped, each result is one plain line when
    it arrives and a progress line is written to stderr only when its text changes,
    so logs never fill with repeated lines.
    """

    def __init__(self, out: Output, collector: Collector, labels: dict[str, str]) -> None:
        self.out = out
        self.collector = collector
        self.labels = labels
        self.lines: dict[str, dict[str, str]] = {}
        self._live = None
        self._last_plain: dict[tuple[str, str], str] = {}
        collector.on_result = out.result
        collector.on_progress = self.progress

    def __enter__(self) -> "LiveReport":
        out = self.out
        if not out.json_mode and not out.quiet and out.console.is_terminal:
            from rich.live import Live

            self._live = Live(self, console=out.console, transient=True, refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def progress(self, slot: str, key: str, text: str) -> None:
        self.lines.setdefault(slot, {})[key] = redact(text)
        if self._live is not None or self.out.json_mode or self.out.quiet:
            return
        if self._last_plain.get((slot, key)) != text:
            self._last_plain[(slot, key)] = text
            self.out.progress(f"    … {text}")

    def __rich__(self):
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        rows = []
        for slot in self.collector.pending:
            started = self.collector.started_at.get(slot)
            if started is None:
                continue
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="ellipsis", no_wrap=True)
            import time

            elapsed = seconds_text(time.monotonic() - started)
            grid.add_row(Spinner("dots", style="cyan"), Text(f"{self.labels.get(slot, slot)}  {elapsed}", style="bold"))
            for text in list(self.lines.get(slot, {}).values()):  # a snapshot: Rich's refresh thread reads while we write
                grid.add_row(Text(""), Text(text, style="dim"))
            rows.append(grid)
        return Group(*rows)


def traceback_text(exc: BaseException) -> str:
    """``--debug``'s traceback: redacted, and inert (an exception's text may quote a server or a platform)."""
    import traceback

    return visible(redact("".join(traceback.format_exception(exc))))


def _indent_of(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def error_report(
    command: str, exit_code: int, kind: str | None, message: str | None, hint: str | None = None, context: str | None = None
) -> dict[str, Any]:
    """The one report object for an exit that produced no results (an error, or a command that printed none)."""
    wall = elapsed_ms()
    return {
        **({"context_name": context} if context else {}),
        "schema": SCHEMA,
        "command": command,
        "status": Status.OK.value if exit_code == 0 else Status.FAIL.value,
        "exit_code": exit_code,
        "duration_ms": round(wall, 1) if wall is not None else None,
        "error": None if kind is None else {"type": kind, "message": message, "hint": hint},
        "results": [],
    }


def _duration(ms: float) -> str:
    return seconds_text(ms / 1000) if ms >= 1000 else (f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms")
