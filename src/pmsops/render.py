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
import os
import re
import sys
import time
from typing import Any, Iterable

from pmsops.redaction import redact, redact_obj
from pmsops.results import Result, Status, exit_code, worst

SCHEMA = "pmsops.report/v1"
STARTED: float | None = None
"""time.monotonic() when the CLI's main() began (set there): JSON's top-level duration_ms counts from here."""
STDOUT_USED = False
"""Set once a report object (or a revealed value) went to stdout: main() then adds no error report."""

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Only characters XML 1.0 allows: ANSI escapes dropped, other control characters (and
    lone surrogates, U+FFFE/U+FFFF) shown as ``\\xNN``/``\\uNNNN``, so one stray byte in an error
    cannot make a CI system drop the whole report. Escaping of ``<&>"`` is the caller's."""
    text = _ANSI.sub("", text)
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def elapsed_ms() -> float | None:
    return None if STARTED is None else (time.monotonic() - STARTED) * 1000


SYMBOLS = {Status.OK: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-"}
STYLES = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "dim"}


def _encoding_supports(stream: Any, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


class Output:
    """Where a command writes: results and lines to stdout, errors and progress to stderr."""

    def __init__(self, json_mode: bool = False, no_color: bool = False) -> None:
        self.json_mode = json_mode
        self.no_color = no_color or bool(os.environ.get("NO_COLOR"))
        self._console = None
        self._err_console = None

    def _make_console(self, stderr: bool):
        from rich.console import Console

        # Rich's no_color drops colours but still writes bold/dim escapes; without a
        # colour system it writes none at all (https://no-color.org: no ANSI codes).
        return Console(
            stderr=stderr,
            no_color=self.no_color,
            color_system=None if self.no_color else "auto",
            highlight=False,
            soft_wrap=True,
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
        if self.json_mode:
            return
        self.console.print(redact(text), style=style)

    def progress(self, text: str) -> None:
        """Progress and warnings go to stderr so stdout stays parseable."""
        self.err_console.print(redact(text))

    def reveal(self, text: str) -> None:
        """Write a value the operator explicitly asked for, unredacted, alone on stdout."""
        global STDOUT_USED
        STDOUT_USED = True
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def json(self, payload: Any) -> None:
        global STDOUT_USED
        STDOUT_USED = True
        sys.stdout.write(json.dumps(redact_obj(payload), ensure_ascii=False, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def error(self, message: str, hint: str | None = None) -> None:
        symbol = "✗" if _encoding_supports(sys.stderr, "✗") else "x"
        self.err_console.print(f"{symbol} error: {redact(message)}", style="red")
        if hint:
            self.err_console.print(f"  → {redact(hint)}", style="dim")

    # results ------------------------------------------------------------------
    def results(
        self,
        results: Iterable[Result],
        command: str,
        strict: bool = False,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Render ``results`` and return the exit code they map to."""
        items = list(results)
        code = exit_code(items, strict=strict)
        if self.json_mode:
            wall = elapsed_ms()
            total = wall if wall is not None else sum(r.duration_ms or 0 for r in items)
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
                "results": rows,
            }
            if extra:
                payload.update(extra)
            self.json(payload)
            return code
        from rich.text import Text

        if title:
            self.console.print(Text(redact(title), style="bold"))
        ascii_only = not _encoding_supports(self.console.file, "✓✗→")
        for result in items:
            symbol = SYMBOLS[result.status]
            if ascii_only:
                symbol = {"✓": "ok", "✗": "x", "!": "!", "-": "-"}[symbol]
            line = Text()
            line.append(f"{symbol} ", style=STYLES[result.status])
            line.append(redact(result.name), style="bold")
            line.append("  " + redact(result.summary))
            if result.duration_ms is not None:
                line.append(f"  ({_duration(result.duration_ms)})", style="dim")
            self.console.print(line)
            for note in result.notes:
                self.console.print(Text("    " + redact(note)))
            if result.hint and result.status in (Status.FAIL, Status.WARN, Status.SKIP):
                arrow = "->" if ascii_only else "→"
                for hint_line in redact(result.hint).splitlines():
                    self.console.print(Text(f"    {arrow} {hint_line}", style="cyan"))
        return code


def error_report(command: str, exit_code: int, kind: str | None, message: str | None, hint: str | None = None) -> dict[str, Any]:
    """The one report object for an exit that produced no results (an error, or a command that printed none)."""
    wall = elapsed_ms()
    return {
        "schema": SCHEMA,
        "command": command,
        "status": Status.OK.value if exit_code == 0 else Status.FAIL.value,
        "exit_code": exit_code,
        "duration_ms": round(wall, 1) if wall is not None else None,
        "error": None if kind is None else {"type": kind, "message": message, "hint": hint},
        "results": [],
    }


def _duration(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
