"""``pmsops top``: the sync system on one terminal screen.

:func:`render` turns one snapshot (:mod:`pmsops.observe.snapshot`) into Rich
renderables and decides nothing else; :func:`run_live` redraws it every
``interval`` seconds in the alternate screen. Collection runs in a background
thread while the main thread waits for a key, so ``q`` and Ctrl-C quit at once
even while a refresh is waiting on a dependency that is down.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from typing import Any, Callable

from pmsops.redaction import redact

SPARK = "▁▂▃▄▅▆▇█"
STATUS_STYLE = {"success": "green", "failed": "red", "running": "yellow", "triggered": "cyan", "queued": "cyan", "cancelled": "dim"}
BREAKER_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def sparkline(values: list[int]) -> str:
    """Eight-level bars scaled to the largest value; a zero is the lowest bar."""
    top = max(values) if values else 0
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _tokens(value: float | None) -> str:
    return "unreadable" if value is None else f"{value:g}"


def breaker_label(breaker: dict[str, Any]) -> str:
    """closed / open — half-open in N s / half-open / unreadable (a corrupt breaker hash)."""
    state = breaker.get("state", "closed")
    if state == "unreadable":
        return "unreadable (corrupt breaker state in Redis)"
    if state == "open":
        return f"open — half-open in {breaker.get('half_open_in_s') or 0:.0f} s"
    if state == "half_open":
        return "half-open"
    failures = breaker.get("failures") or 0
    return "closed" + (f" ({failures} recent failure{'s' if failures != 1 else ''})" if failures else "")


def _error_text(message: str):
    from rich.text import Text

    return Text(redact(message), style="bold red")


def _workers_panel(panel: dict[str, Any]):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    expected, answered, missing = panel.get("expected"), panel.get("answered", 0), panel.get("missing", 0)
    title = f"Workers {answered}" + (f"/{expected} expected" if expected is not None else "")
    style = "red" if missing or panel.get("error") or not (panel.get("items") or panel.get("silent")) else "green"
    if panel.get("error"):
        return Panel(_error_text(panel["error"]), title=title, border_style="red")
    table = Table(expand=True, box=None, pad_edge=False)
    for column in ("worker", "pool", "conc", "active", "done", "up", "last seen"):
        table.add_column(column, justify="right" if column in ("conc", "active", "done") else "left")
    now = time.time()
    for w in panel["items"]:
        table.add_row(
            w["name"],
            w["pool"],
            str(w["concurrency"]),
            str(w["active"] if w["active"] is not None else "?"),
            str(w["processed"]),
            _ago(w.get("uptime_s")),
            f"{_ago(now - w['last_seen'])} ago",
        )
    for w in panel.get("silent") or []:
        seen = f"{_ago(now - w['last_seen'])} ago" if w.get("last_seen") else "never (stale binding?)"
        table.add_row(Text(w["name"], style="red"), "", "", "", "", "", Text(f"silent; {seen}", style="red"))
    parts: list[Any] = [table]
    if missing:
        parts.append(Text(f"MISSING {missing} expected worker{'s' if missing != 1 else ''} ({answered} of {expected} answered)", style="bold red"))
    elif not panel["items"] and not panel.get("silent"):
        parts.append(Text("no worker answered", style="red"))
    return Panel(Group(*parts), title=title, border_style=style)


def _queues_panel(panel: dict[str, Any]):
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if panel.get("error"):
        return Panel(_error_text(panel["error"]), title="Queues", border_style="red")
    table = Table(expand=True, box=None, pad_edge=False)
    table.add_column("queue")
    table.add_column("ready", justify="right")
    table.add_column("oldest waiting", justify="right")
    for q in panel["items"]:
        oldest = _ago(q["oldest_age_s"]) if q["oldest_age_s"] is not None else ("—" if not q["ready"] else "?")
        table.add_row(q["name"], str(q["ready"]), oldest)
    table.add_row(
        Text("reserved (unacked)", style="dim"),
        str(panel.get("unacked")),
        _ago(panel.get("oldest_unacked_age_s")) if panel.get("oldest_unacked_age_s") is not None else "—",
    )
    return Panel(table, title="Queues", border_style="blue")


def _active_panel(panel: dict[str, Any]):
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if panel.get("error"):
        return Panel(_error_text(panel["error"]), title="Active tasks", border_style="red")
    table = Table(expand=True, box=None, pad_edge=False)
    for column in ("task", "id", "worker", "age"):
        table.add_column(column, justify="right" if column == "age" else "left")
    for t in panel["items"][:8]:
        style = "bold red" if t["stuck"] else None
        table.add_row(
            Text(str(t["name"]).replace("pmsops.sync.", ""), style=style),
            str(t["id"])[:8],
            t["worker"],
            Text(_ago(t["age_s"]) + (" STUCK" if t["stuck"] else ""), style=style),
        )
    if not panel["items"]:
        table.add_row(Text("idle", style="dim"), "", "", "")
    return Panel(table, title=f"Active tasks (stuck after {panel['stuck_after_s']:g} s)", border_style="blue")


def _syncs_panel(panel: dict[str, Any], rows: int = 10):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if panel.get("error"):
        return Panel(_error_text(panel["error"]), title="Syncs", border_style="red")
    stream = Table(expand=True, box=None, pad_edge=False)
    for column in ("age", "operation", "connection", "platform", "status", "retry", "error type", "next retry"):
        stream.add_column(column)
    for s in panel["recent"][:rows]:
        stream.add_row(
            _ago(s["age_s"]),
            s["operation"],
            str(s["connection_id"])[:8],
            s.get("platform") or "?",
            Text(s["status"], style=STATUS_STYLE.get(s["status"])),
            f"{s['retry']}/{s['max_retries']}",
            s.get("error_type") or "",
            f"in {s['next_retry_in_s']:.0f} s" if s.get("next_retry_in_s") is not None else "",
        )
    if not panel["recent"]:
        stream.add_row("", Text("no sync in the last hour", style="dim"), "", "", "", "", "", "")
    rates = Table(expand=True, box=None, pad_edge=False)
    for column in ("platform", "5m ok/fail", "15m ok/fail", "60m ok/fail", "ok (5-min bins, 1 h)", "fail (5-min bins, 1 h)"):
        rates.add_column(column)
    for platform, entry in panel["per_platform"].items():
        counts = [
            Text.assemble((str(entry[w]["success"]), "green"), "/", (str(entry[w]["failed"]), "red" if entry[w]["failed"] else ""))
            for w in ("5m", "15m", "60m")
        ]
        rates.add_row(platform, *counts, Text(sparkline(entry["spark_success"]), style="green"), Text(sparkline(entry["spark_failed"]), style="red"))
    return Panel(Group(stream, Text(""), rates), title="Syncs", border_style="blue")


def _platforms_panel(panel: dict[str, Any]):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if panel.get("error"):
        return Panel(_error_text(panel["error"]), title="Platforms", border_style="red")
    table = Table(expand=True, box=None, pad_edge=False)
    table.add_column("platform", no_wrap=True)
    table.add_column("breaker", no_wrap=True)
    table.add_column("tokens left / account", overflow="fold")
    for p in panel["items"]:
        breaker = p["breaker"]
        tokens = ", ".join(f"{b['account'][:8]} {_tokens(b['tokens'])}/{b['burst']}" for b in p["rate_limits"]) or "—"
        table.add_row(p["platform"], Text(breaker_label(breaker), style=BREAKER_STYLE.get(breaker["state"])), tokens)
    parts: list[Any] = [table]
    if panel.get("rate_limit_error"):
        parts.append(Text(redact(panel["rate_limit_error"]), style="yellow"))
    return Panel(Group(*parts), title="Platforms", border_style="red" if any(p["breaker"]["state"] != "closed" for p in panel["items"]) else "blue")


def header(snapshot: dict[str, Any], interval: float | None = None):
    from rich.text import Text

    cost = snapshot.get("cost") or {}
    trips = cost.get("round_trips") or {}
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot["taken_at"]))
    line = Text.assemble(("pmsops top", "bold"))
    if snapshot.get("context_name"):
        line.append(f"  context: {snapshot['context_name']}", style="bold magenta")
    line.append_text(
        Text.assemble(
            f"  {when}",
            f"  refresh {cost.get('wall_ms', 0):.0f} ms: {trips.get('redis_pipelines', 0)} Redis pipelines, "
            f"{trips.get('db_queries', 0)} SQL query, {trips.get('broadcasts', 0)} broadcasts",
        )
    )
    if interval:
        line.append(f"  every {interval:g} s · q or Ctrl-C quits", style="dim")
    return line


def exit_code(snapshot: dict[str, Any]) -> int:
    """``top --once`` and ``--json`` as a check: 1 when fewer workers answered than ``--expect-workers`` asked for
    (what the Workers panel shows as MISSING), else 0."""
    return 1 if (snapshot.get("workers") or {}).get("missing") or snapshot.get("unusable") else 0


def render(snapshot: dict[str, Any], interval: float | None = None, width: int | None = None, height: int | None = None):
    """The whole screen for one snapshot (its outside text — worker and task names, errors — shown as escapes);
    the compact screen on a terminal under :data:`COMPACT_BELOW` (``width``/``height``: the terminal's, when known)."""
    from rich.console import Group
    from rich.table import Table

    from pmsops.visible import visible_obj

    snapshot = visible_obj(snapshot)
    if width is not None and (width < COMPACT_BELOW[0] or (height is not None and height < COMPACT_BELOW[1])):
        return render_compact(snapshot, interval, width, height)
    grid = Table.grid(expand=True)
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(_workers_panel(snapshot["workers"]), _queues_panel(snapshot["queues"]))
    grid.add_row(_active_panel(snapshot["active"]), _platforms_panel(snapshot["platforms"]))
    return Group(header(snapshot, interval), grid, _syncs_panel(snapshot["syncs"]))


class _Keys:
    """Single keys from a terminal in cbreak mode (Ctrl-C still raises KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        self._saved = None

    def __enter__(self) -> "_Keys":
        if self.fd is not None:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *_: object) -> None:
        if self.fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def wait(self, seconds: float) -> str | None:
        """A key pressed within ``seconds``, or None."""
        if self.fd is None:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([self.fd], [], [], max(0.0, seconds))
        if ready:
            return os.read(self.fd, 32).decode(errors="replace")
        return None


def run_live(collect: Callable[[], dict[str, Any]], interval: float, console=None) -> int:
    """Redraw every ``interval`` seconds until ``q`` or Ctrl-C; returns the exit code (0)."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = console or Console()
    box: dict[str, Any] = {}
    done = threading.Event()

    def refresh() -> None:
        try:
            box["snapshot"] = collect()
        except Exception as exc:  # noqa: BLE001 - the view stays up; the next refresh may work
            box["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()

    try:
        with (
            _Keys() as keys,
            Live(Text("pmsops top: collecting the first snapshot …"), console=console, screen=True, auto_refresh=False, transient=True) as live,
        ):
            while True:
                done.clear()
                box.clear()
                threading.Thread(target=refresh, name="top-refresh", daemon=True).start()
                next_at = time.monotonic() + interval
                while not done.is_set():
                    if _quit(keys.wait(0.1)):
                        return 0
                if "snapshot" in box:
                    live.update(render(box["snapshot"], interval, console.width, console.height), refresh=True)
                else:
                    live.update(_error_text("refresh failed: " + box.get("error", "?")), refresh=True)
                while True:
                    left = next_at - time.monotonic()
                    if left <= 0:
                        break
                    if _quit(keys.wait(min(left, 0.2))):
                        return 0
    except KeyboardInterrupt:
        return 0


def _quit(key: str | None) -> bool:
    return bool(key) and ("q" in key.lower() or "\x03" in key)


# --- the compact screen: 80×24 first -----------------------------------------------------------------------------

COMPACT_BELOW = (100, 34)
"""A terminal narrower or shorter than this (columns, lines) gets the compact screen: one line per fact, no boxes,
every section's title, at least five syncs, the newest trend bins, and the quit hint on the first line."""


def _line(*parts: tuple[str, str | None] | str, width: int):
    from rich.text import Text

    text = Text.assemble(*parts)
    text.truncate(width, overflow="ellipsis")
    return text


def _title(name: str, error: str | None, width: int, extra: str = ""):
    style = "bold red" if error else "bold"
    return _line((name, style), (f"  {extra}" if extra else "", "dim"), ((f"  {redact(error)}" if error else ""), "red"), width=width)


def _compact_workers(panel: dict[str, Any], width: int) -> list:
    expected, answered, missing = panel.get("expected"), panel.get("answered", 0), panel.get("missing", 0)
    lines = [_title(f"Workers {answered}" + (f"/{expected} expected" if expected is not None else ""), panel.get("error"), width)]
    now = time.time()
    for w in panel.get("items") or []:
        active = w["active"] if w["active"] is not None else "?"
        lines.append(
            _line(
                f"  {w['name']}  {w['pool']}×{w['concurrency']}  active {active}  done {w['processed']}  seen {_ago(now - w['last_seen'])} ago",
                width=width,
            )
        )
    for w in panel.get("silent") or []:
        lines.append(_line((f"  {w['name']}  silent", "red"), width=width))
    if missing:
        lines.append(_line((f"  MISSING {missing} expected worker{'s' if missing != 1 else ''}", "bold red"), width=width))
    elif not panel.get("error") and not panel.get("items") and not panel.get("silent"):
        lines.append(_line(("  no worker answered", "red"), width=width))
    return lines


def _compact_queues_and_active(queues: dict[str, Any], active: dict[str, Any], width: int) -> list:
    ready = " · ".join(f"{q['name']} {q['ready']}" for q in queues.get("items") or [])
    lines = [_title("Queues", queues.get("error"), width, "" if queues.get("error") else f"{ready} · reserved {queues.get('unacked')}")]
    items = active.get("items") or []
    idle = "idle" if not items else f"{len(items)} running, {sum(1 for t in items if t['stuck'])} stuck"
    lines.append(_title("Active tasks", active.get("error"), width, "" if active.get("error") else idle))
    for t in items[:2]:
        style = "bold red" if t["stuck"] else None
        lines.append(_line((f"  {str(t['name']).replace('pmsops.sync.', '')}  {str(t['id'])[:8]}  {_ago(t['age_s'])}", style), width=width))
    return lines


def _compact_platforms(panel: dict[str, Any], width: int) -> list:
    from rich.text import Text

    lines = [_title("Platforms", panel.get("error"), width, "" if panel.get("error") else "breaker, tokens left/burst")]
    row = Text("  ")
    for p in panel.get("items") or []:
        state = p["breaker"]["state"]
        label = {"open": f"OPEN {p['breaker'].get('half_open_in_s') or 0:.0f}s", "half_open": "half-open"}.get(state, state)
        tokens = ",".join(f"{_tokens(b['tokens'])}/{b['burst']}" for b in p["rate_limits"]) or "—"
        piece = Text.assemble((p["platform"], "bold"), " ", (label, BREAKER_STYLE.get(state)), f" {tokens}   ")
        if row.cell_len + piece.cell_len > width and row.plain.strip():
            lines.append(row)
            row = Text("  ")
        row.append_text(piece)
    if row.plain.strip():
        row.truncate(width, overflow="ellipsis")
        lines.append(row)
    return lines


def _compact_syncs(panel: dict[str, Any], width: int, rows: int) -> list:
    from rich.text import Text

    lines = [_title("Syncs", panel.get("error"), width, "" if panel.get("error") else "newest first; retry n/max")]
    for s in (panel.get("recent") or [])[:rows]:
        retry = f"in {s['next_retry_in_s']:.0f}s" if s.get("next_retry_in_s") is not None else ""
        lines.append(
            _line(
                f"  {_ago(s['age_s']):>6}  {s['operation'][:20]:<20} {(s.get('platform') or '?')[:11]:<11} ",
                (f"{s['status']:<9}", STATUS_STYLE.get(s["status"])),
                f" {s['retry']}/{s['max_retries']} {s.get('error_type') or ''} {retry}",
                width=width,
            )
        )
    if not panel.get("recent") and not panel.get("error"):
        lines.append(_line(("  no sync in the last hour", "dim"), width=width))
    lines.append(_title("Trend", None, width, "ok/fail 5m and 60m; bars per 5 min, newest right"))
    for platform, entry in (panel.get("per_platform") or {}).items():
        head = f"  {platform[:11]:<11} {entry['5m']['success']}/{entry['5m']['failed']:<3} {entry['60m']['success']}/{entry['60m']['failed']:<4} "
        room = max(2, (width - len(head)) // 2 - 1)  # keep the newest bins: cut from the left
        lines.append(
            Text.assemble(head, (sparkline(entry["spark_success"])[-room:], "green"), " ", (sparkline(entry["spark_failed"])[-room:], "red"))
        )
    return lines


def render_compact(snapshot: dict[str, Any], interval: float | None, width: int, height: int | None):
    """The 80×24 screen (see :data:`COMPACT_BELOW`); ``snapshot`` is already inert."""
    from rich.console import Group

    when = time.strftime("%H:%M:%S UTC", time.gmtime(snapshot["taken_at"]))
    first = _line(
        ("pmsops top", "bold"),
        ("  q quits" if interval else "", "bold"),
        (f"  context: {snapshot['context_name']}" if snapshot.get("context_name") else "", "bold magenta"),
        f"  {when}",
        (f"  every {interval:g} s" if interval else "", "dim"),
        width=width,
    )
    top = [first, *_compact_workers(snapshot["workers"], width), *_compact_queues_and_active(snapshot["queues"], snapshot["active"], width)]
    top += _compact_platforms(snapshot["platforms"], width)
    trend = len((snapshot["syncs"].get("per_platform") or {})) + 1
    rows = max(5, height - len(top) - trend - 2) if height else 10
    return Group(*top, *_compact_syncs(snapshot["syncs"], width, rows))
