"""Inline SVG charts for ``report.html``: no script, no external URL, no dependency.

Each function returns one ``<svg class="chart" data-chart="…">`` element (the HTML
parser puts it in the SVG namespace, so no ``xmlns`` URL is needed). Marks carry
classes (``bar ok``, ``bar fail``, ``event retry``, ``event fail``, ``bar ready``) so
a test can count them in a browser's DOM. Every label is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH = 760
LEFT = 110
RIGHT = 16
COLORS = {"ok": "#2e7d32", "fail": "#c62828", "retry": "#ef6c00", "ready": "#1565c0", "reserved": "#6a1b9a", "axis": "#888", "text": "#222"}


OUTCOME = {"ok": "success", "fail": "failed", "retry": "still retrying"}


def _svg(kind: str, title: str, height: int, body: list[str]) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(kind)}" role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11, fill: str = COLORS["text"]) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'


def _time_axis(y: float, span_s: float) -> list[str]:
    """Tick labels under a time axis running from -span to now."""
    plot = WIDTH - LEFT - RIGHT
    out = [f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{COLORS["axis"]}"/>']
    for i in range(5):
        x = LEFT + plot * i / 4
        ago = span_s * (1 - i / 4)
        label = "now" if ago == 0 else (f"-{ago / 3600:g} h" if ago >= 7200 else f"-{ago / 60:.0f} min")
        out.append(_text(x, y + 14, label, "middle", 10, COLORS["axis"]))
    return out


def outcomes_chart(buckets: list[dict[str, Any]], platforms: list[str], bucket_seconds: float, span_s: float) -> str:
    """Sync outcomes per platform over time: stacked bars (success, failed, still retrying) per time bucket.

    ``buckets`` rows are ``{"platform", "bucket" (0 = newest), "status": success|failed|retrying, "n"}``.
    """
    count = max(1, int(round(span_s / bucket_seconds)))
    lane, plot = 46, WIDTH - LEFT - RIGHT
    height = 20 + lane * max(1, len(platforms)) + 24
    width = plot / count
    body = [_text(LEFT, 12, f"sync outcomes per {bucket_seconds / 60:g} min: green success, red failed, orange still retrying", size=11)]
    for row, platform in enumerate(platforms):
        top = 20 + row * lane
        mine = [b for b in buckets if b.get("platform") == platform and 0 <= b["bucket"] < count]
        peak = max([sum(b["n"] for b in mine if b["bucket"] == k) for k in range(count)] + [1])
        body.append(_text(LEFT - 8, top + lane / 2 + 4, platform, "end"))
        body.append(f'<line x1="{LEFT}" y1="{top + lane - 4}" x2="{WIDTH - RIGHT}" y2="{top + lane - 4}" stroke="#ddd"/>')
        for k in range(count):
            ok = sum(b["n"] for b in mine if b["bucket"] == k and b["status"] == "success")
            failed = sum(b["n"] for b in mine if b["bucket"] == k and b["status"] == "failed")
            retrying = sum(b["n"] for b in mine if b["bucket"] == k and b["status"] == "retrying")
            x = LEFT + (count - 1 - k) * width
            base = top + lane - 4
            for n, cls in ((ok, "ok"), (failed, "fail"), (retrying, "retry")):
                if n:
                    h = (lane - 10) * n / peak
                    base -= h
                    body.append(
                        f'<rect class="bar {cls}" x="{x + 1:.1f}" y="{base:.1f}" width="{max(1.0, width - 2):.1f}" height="{h:.1f}"'
                        f' fill="{COLORS[cls]}"><title>{escape(platform)}: {n} {OUTCOME[cls]}</title></rect>'
                    )
        if not mine:
            body.append(_text(LEFT + 6, top + lane / 2 + 4, "no syncs", size=10, fill=COLORS["axis"]))
    body += _time_axis(height - 22, span_s)
    return _svg("outcomes", "Sync outcomes per platform over time", height, body)


def timeline_chart(events: list[dict[str, Any]], platforms: list[str], now: float, span_s: float) -> str:
    """Retries (orange dots, bigger for later retries) and failures (red squares) per platform on a timeline.

    ``events`` rows are ``{"platform", "at" (epoch s), "kind": "retry"|"fail", "retry", "error_type"}``.
    """
    lane, plot = 28, WIDTH - LEFT - RIGHT
    lanes = platforms or ["?"]
    height = 20 + lane * len(lanes) + 24
    body = [_text(LEFT, 12, "retries (orange, size = retry n) and failures (red) on a timeline", size=11)]
    for row, platform in enumerate(lanes):
        y = 20 + row * lane + lane / 2
        body.append(_text(LEFT - 8, y + 4, platform, "end"))
        body.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
    for event in events:
        if event.get("platform") not in lanes:
            continue
        ago = now - float(event["at"])
        if ago < 0 or ago > span_s:
            continue
        x = LEFT + plot * (1 - ago / span_s)
        y = 20 + lanes.index(event["platform"]) * lane + lane / 2
        label = escape(f"{event['platform']}: {event.get('error_type') or event['kind']} (retry {event.get('retry', 0)})")
        if event["kind"] == "fail":
            body.append(
                f'<rect class="event fail" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{COLORS["fail"]}"><title>{label}</title></rect>'
            )
        else:
            r = 2.5 + 1.5 * min(3, int(event.get("retry") or 1))
            body.append(
                f'<circle class="event retry" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{COLORS["retry"]}"'
                f' fill-opacity="0.8"><title>{label}</title></circle>'
            )
    body += _time_axis(height - 22, span_s)
    return _svg("timeline", "Retries and errors on a timeline", height, body)


def queue_chart(queues: list[dict[str, Any]], reserved: int | None) -> str:
    """Queue depth now: ready messages per queue and reserved (unacked) ones, as horizontal bars."""
    rows = [(q["name"], int(q.get("ready") or 0), "ready") for q in queues]
    if reserved is not None:
        rows.append(("reserved", int(reserved), "reserved"))
    lane, plot = 24, WIDTH - LEFT - RIGHT - 40
    height = 20 + lane * max(1, len(rows)) + 8
    peak = max([n for _, n, _ in rows] + [1])
    body = [_text(LEFT, 12, "queue depth at report time", size=11)]
    for row, (name, n, cls) in enumerate(rows):
        y = 20 + row * lane
        body.append(_text(LEFT - 8, y + 15, name, "end"))
        w = plot * n / peak
        body.append(
            f'<rect class="bar {cls}" x="{LEFT}" y="{y + 4}" width="{max(w, 1.0):.1f}" height="{lane - 8}"'
            f' fill="{COLORS[cls]}"><title>{escape(name)}: {n}</title></rect>'
        )
        body.append(_text(LEFT + max(w, 1.0) + 6, y + 15, str(n)))
    if not rows:
        body.append(_text(LEFT, 34, "broker unreachable: no queue data", fill=COLORS["fail"]))
    return _svg("queues", "Queue depth", height, body)
