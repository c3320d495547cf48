"""``pmsops report``'s two renderings: ``report.md`` (every cell inert: HTML escaped, Markdown punctuation
escaped) and ``report.html`` (a template filled with escaped values; inline CSS and SVG; a CSP that forbids every
external load; no script). Every text is redacted before it is escaped."""

from __future__ import annotations

import re
import time
from html import escape
from typing import Any

from pmsops.redaction import redact
from pmsops.results import Status

from pmsops.observe.report_sections import Section, _results_text, _utc, bucket_seconds_for  # noqa: F401


_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]()!#|~])")


def _md_cell(text: str) -> str:
    """Outside text as inert Markdown for a ticket: steering characters as visible escapes, HTML escaped (no <img>,
    no autolink), Markdown punctuation backslash-escaped (no image, no [link](javascript:…), no emphasis), one line."""
    import html

    from pmsops.visible import visible

    text = visible(redact(str(text)).replace("\n", " "))
    return _MD_PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))


def markdown(payload: dict[str, Any], sections: list[Section], evidence: dict[str, str]) -> str:
    """Summary first (to paste into a ticket), then every section's results, then the evidence list."""
    out = [
        f"# pmsops report — {_md_cell(payload['context'])} — {payload['generated_at']}",
        "",
        f"Overall: **{payload['status'].upper()}**, window: last {payload['since']}.",
        "",
        "## Summary",
        "",
    ]
    if payload["summary"]:
        out += ["| | what is failing | since | runbook section | fix |", "|---|---|---|---|---|"]
        for item in payload["summary"]:
            out.append(
                f"| {item['status'].upper()} | **{_md_cell(item['name'])}**: {_md_cell(item['what'])} | {item['since']} | {_md_cell(item['runbook'])}"
                f" | {_md_cell(item['fix'])} |"
            )
    else:
        out.append("Nothing is failing.")
    out += ["", "## Details", ""]
    for s in sections:
        out.append(f"### {s.title} — {s.status.value} ({s.duration_ms:.0f} ms)")
        if s.error:
            out.append(f"- section failed: {_md_cell(s.error)}")
        for r in s.results:
            out.append(f"- `{r.status.value}` **{_md_cell(r.name)}** — {_md_cell(r.summary)}")
            out += [f"  - {_md_cell(n)}" for n in r.notes[:20]]
            if r.hint and r.status is not Status.OK:
                out.append(f"  - → {_md_cell(r.hint)}")
        out.append("")
    out += ["## Evidence", ""] + [f"- `{path}`" for path in sorted(evidence)] + [""]
    return redact("\n".join(out))


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;width:100%;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f5f5f5}.fail{color:#c62828;font-weight:600}.warn{color:#ef6c00;font-weight:600}.ok{color:#2e7d32}.skip{color:#888}
pre{background:#f7f7f7;border:1px solid #e5e5e5;padding:8px;overflow:auto;font-size:12px;max-height:420px}
.chart{display:block;margin:8px 0;width:100%;height:auto;background:#fff;border:1px solid #eee}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff}
.badge.fail{background:#c62828}.badge.warn{background:#ef6c00}.badge.ok{background:#2e7d32}.badge.skip{background:#888}
"""


def _h(value: Any) -> str:
    return escape(redact(str(value)))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pmsops report — {context} — {generated_at}</title><style>{css}</style></head>
<body><h1>pmsops report — {context}</h1>
<p>Generated {generated_at}; window: last {since};
overall <span class="badge {status}">{status}</span></p>
<h2 id="summary">Summary</h2>{summary}
<h2 id="charts">Charts</h2>{charts}
<h2 id="details">Details</h2>{details}
<h2 id="evidence">Evidence</h2>{evidence}
</body></html>
"""
"""report.html: every value filled in is escaped HTML (:func:`_h`) or markup built from escaped values."""


def html_page(payload: dict[str, Any], sections: list[Section], evidence: dict[str, str]) -> str:
    """One self-contained page: inline CSS and SVG, a CSP that forbids every external load, no script.

    Every text is redacted *before* it is HTML-escaped (:func:`_h`): a secret with ``&`` or a quote
    in it would otherwise reach the page in an escaped form that no later pass recognises.
    """
    page = PAGE.format(
        context=_h(payload["context"]),
        generated_at=_h(payload["generated_at"]),
        css=CSS,
        since=_h(payload["since"]),
        status=_h(payload["status"]),
        summary=_html_summary(payload),
        charts=_html_charts(payload),
        details="".join(_html_section(s) for s in sections),
        evidence="".join(f"<h3>{_h(path)}</h3><pre>{_h(text)}</pre>" for path, text in sorted(evidence.items())),
    )
    return redact(page)


def _html_charts(payload: dict[str, Any]) -> str:
    from pmsops.observe import charts
    from pmsops.sync import PLATFORMS

    data = payload.get("data") or {}
    syncs = data.get("sync-logs") or {}
    queues = (data.get("snapshot") or {}).get("queues") or {}
    since = float(_since_seconds(payload))
    now = float(syncs.get("now") or time.time())
    events = [
        {
            "platform": e["platform"],
            "at": e["at"],
            "kind": "fail" if e["status"] == "failed" else "retry",
            "retry": e["retry"],
            "error_type": e["error_type"],
        }
        for e in syncs.get("events") or []
    ]
    failed = str((payload["sections"].get("sync-logs") or {}).get("error") or "sync-logs section failed")
    outcomes = (
        charts.outcomes_chart(syncs.get("buckets") or [], list(PLATFORMS), float(syncs.get("bucket_seconds") or bucket_seconds_for(since)), since)
        if syncs
        else f'<p class="fail">no sync data: {_h(failed)}</p>'
    )
    return "".join(
        [
            "<h3>Sync outcomes per platform over time</h3>",
            outcomes,
            "<h3>Retries and errors on a timeline</h3>",
            charts.timeline_chart(events, list(PLATFORMS), now, since) if syncs else "",
            "<h3>Queue depth</h3>",
            charts.queue_chart(queues.get("items") or [], queues.get("unacked")),
        ]
    )


def _html_summary(payload: dict[str, Any]) -> str:
    if not payload["summary"]:
        return '<p class="ok">Nothing is failing.</p>'
    rows = "".join(
        f'<tr><td><span class="badge {_h(i["status"])}">{_h(i["status"])}</span></td><td><b>{_h(i["name"])}</b>: {_h(i["what"])}</td>'
        f"<td>{_h(i['since'])}</td><td>{_h(i['runbook'])}</td><td>{_h(i['fix'])}</td></tr>"
        for i in payload["summary"]
    )
    return f"<table><tr><th></th><th>what is failing</th><th>since</th><th>runbook section</th><th>fix</th></tr>{rows}</table>"


def _html_section(section: Section) -> str:
    rows = "".join(
        f'<tr><td class="{r.status.value}">{r.status.value}</td><td>{_h(r.name)}</td><td>{_h(r.summary)}'
        + "".join(f"<br><small>{_h(n)}</small>" for n in r.notes[:20])
        + (f"<br><small>→ {_h(r.hint)}</small>" if r.hint and r.status is not Status.OK else "")
        + "</td></tr>"
        for r in section.results
    )
    return (
        f'<h3>{_h(section.title)} <span class="badge {section.status.value}">{section.status.value}</span>'
        f" <small>{section.duration_ms:.0f} ms</small></h3>"
        + (f'<p class="fail">section failed: {_h(section.error)}</p>' if section.error else "")
        + f"<table>{rows}</table>"
    )


def _since_seconds(payload: dict[str, Any]) -> float:
    from pmsops.sync.maintenance import parse_duration

    return parse_duration(payload.get("since") or "60m")
