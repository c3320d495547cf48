"""``pmsops report``: one redacted ``.tar.gz`` to attach to an incident.

The bundle ``pmsops-report-<context>-<UTC time>.tar.gz`` holds ``report.md``
(summary first: what is failing, since when, the runbook section and fix),
``report.json`` (schema ``pmsops.report/v1``), ``report.html`` (self-contained,
inline CSS and SVG) and ``evidence/``. Sections run concurrently, each bounded
and each recording its own failure, so the report completes when parts of the
system are down — that is when it is needed.

Fail closed: every string passes :func:`pmsops.redaction.redact`, then the whole
content is scanned for every registered secret in every form
(:mod:`pmsops.observe.secrets`); a hit raises and nothing is written. The archive
is written to a temporary file (``O_EXCL | O_NOFOLLOW``, mode 0600) and linked
into place, so a half-written or clobbered report cannot exist.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmsops.redaction import redact, redact_obj
from pmsops.visible import visible, visible_obj
from pmsops.render import SCHEMA
from pmsops.results import Status, worst

from pmsops.observe.report_sections import (  # noqa: F401 - the report's parts, re-exported where the CLI and tests find them
    Options,
    Section,
    context_name,
    run_sections,
    runbook_for,
)
from pmsops.observe.report_sections import _results_text, _utc  # noqa: F401
from pmsops.observe.report_views import html_page, markdown  # noqa: F401


# --- the bundle -------------------------------------------------------------------------------------------


@dataclass
class Bundle:
    name: str
    members: dict[str, bytes]
    summary: list[dict[str, Any]]
    status: Status


def failing_items(sections: list[Section]) -> list[dict[str, Any]]:
    """What is failing, since when, and the runbook's section and fix for each (fails first, then warnings)."""
    ranked = [(s, r) for s in sections for r in s.results if r.status in (Status.FAIL, Status.WARN)]
    ranked.sort(key=lambda pair: 0 if pair[1].status is Status.FAIL else 1)
    items, seen = [], set()
    for section, r in ranked:
        if r.summary in seen:
            continue  # several sections meet the same outage (doctor and smoke both ask /health/ready): one line each
        seen.add(r.summary)
        since = (r.details or {}).get("first_at") or (r.details or {}).get("opened_at")
        runbook, fix = runbook_for(r.name)
        items.append(
            {
                "section": section.name,
                "name": r.name,
                "status": r.status.value,
                "what": redact(r.summary),
                "since": _utc(since) if since else "at report time",
                "runbook": runbook,
                "fix": redact(r.hint or fix),
            }
        )
    return items


def build_bundle(settings, opts: Options, sections: list[Section] | None = None, now: float | None = None) -> Bundle:
    """Run the sections and render every file of the bundle (nothing is written here)."""
    now = time.time() if now is None else now
    started = time.perf_counter()
    sections = run_sections(settings, opts) if sections is None else sections
    summary = failing_items(sections)
    all_results = [r for s in sections for r in s.results]
    status = worst(all_results) if all_results else Status.SKIP
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    name = f"pmsops-report-{opts.context}-{stamp}.tar.gz"
    payload = {
        "schema": SCHEMA,
        "command": "report",
        "status": status.value,
        "exit_code": 0,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "generated_at": _utc(now),
        "context": opts.context,
        "since": opts.since_text,
        "summary": summary,
        "sections": {
            s.name: {"title": s.title, "status": s.status.value, "error": s.error, "duration_ms": round(s.duration_ms, 1)} for s in sections
        },
        "results": [dict(r.to_dict(), section=s.name) for s in sections for r in s.results],
        "data": {s.name: s.data for s in sections if s.data is not None},
    }
    # outside data (log lines, API and broker text) is made inert where the bundle is made: `cat evidence/*.txt`,
    # `jq -r` on report.json and the Markdown are read in terminals too (#23 item 1)
    payload = visible_obj(redact_obj(json.loads(json.dumps(payload, default=str))))
    evidence = {path: visible(redact(text)) for s in sections for path, text in s.evidence.items()}
    members = {
        "report.md": markdown(payload, sections, evidence),
        "report.json": json.dumps(payload, indent=2, ensure_ascii=False) + "\n",
        "report.html": html_page(payload, sections, evidence),
        **evidence,
    }
    return Bundle(name, {k: v.encode("utf-8") for k, v in members.items()}, summary, status)


# --- writing ----------------------------------------------------------------------------------------------


def archive_bytes(bundle: Bundle, now: float | None = None) -> bytes:
    """The .tar.gz in memory: members under one directory, mode 0600, no owner names."""
    import gzip

    now = time.time() if now is None else now
    top = bundle.name[: -len(".tar.gz")]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in bundle.members.items():
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode, info.mtime, info.uname, info.gname = len(content), 0o600, int(now), "", ""
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=int(now))


def destination(output: str | None, name: str) -> Path:
    """--output as a directory (the bundle's name inside it) or as the file name; default the current directory."""
    if not output:
        return Path.cwd() / name
    target = Path(output).expanduser()
    if target.is_dir():
        return target / name
    return target


def make_report(settings, opts: Options, output: str | None = None) -> tuple[Path, Bundle]:
    """Collect, render, scan for secrets (fail closed), then write the archive. Returns (path, bundle)."""
    from pmsops.observe.secrets import ensure_clean

    now = time.time()
    bundle = build_bundle(settings, opts, now=now)
    ensure_clean({"(archive name)": bundle.name, **bundle.members})
    data = archive_bytes(bundle, now)
    target = destination(output, bundle.name)
    if target.exists() or target.is_symlink():
        from pmsops.errors import UsageError

        raise UsageError(f"{target} already exists (a report is never overwritten)", hint="pass another --output")
    from pmsops.safefile import write_new

    return write_new(target, data, what="the report", hint="pass another --output"), bundle
