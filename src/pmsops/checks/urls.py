"""``redis-url check``: lint the Redis URLs of the environment (or one given URL)."""

from __future__ import annotations

from pmsops import results
from pmsops.errors import UsageError
from pmsops.results import Result, Stopwatch
from pmsops.settings import REDIS_URL_VARIABLES, Settings, register_environment_secrets
from pmsops.urls import UrlReport, compare_redis_urls, describe, lint_redis_url, mask_url, reads_password_as_host

_ENCODE_HINT = "get the exact value with: pmsops encode-redis-password --host HOST (prompted, never echoed)"


def report_to_result(report: UrlReport) -> Result:
    notes = [f"{f.level}: {f.message}" for f in report.findings]
    hint = None
    if report.encodings:
        # What changes, not a masked "corrected" URL (masked it looks like the input and cannot be used).
        changes = ", ".join(f"'{raw}' → {encoded}" if len(raw) == 1 else f"{raw} → {encoded}" for raw, encoded in report.encodings)
        hint = f"characters to encode: {changes}\nthe exact URLs: {report.encode_command} (prompted, never echoed)"
    elif report.errors:
        hint = _ENCODE_HINT
    pieces_of_password = reads_password_as_host(report)
    details = {
        "url": mask_url(report.url),
        "findings": [vars(f) for f in report.findings],
        "host": report.effective_host if not pieces_of_password else None,
        "port": report.effective_port if not pieces_of_password else None,
        "db": report.effective_db if not pieces_of_password else None,
        "encodings": [{"raw": raw, "encoded": encoded} for raw, encoded in report.encodings],
        "encode_command": report.encode_command,
    }
    summary = describe(report)
    if report.errors:
        return results.fail(report.name, summary, notes=notes, hint=hint, details=details)
    if report.warnings:
        return results.warn(report.name, summary, notes=notes, hint=hint, details=details)
    return results.ok(report.name, summary, notes=notes, details=details)


def lint_environment(settings: Settings) -> list[UrlReport]:
    """Lint each of REDIS_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND that is set."""
    reports = []
    for name in REDIS_URL_VARIABLES:
        value = settings.env.get(name)
        if value:
            reports.append(_lint_or_usage(value, name))
    return reports


def _lint_or_usage(url: str, name: str) -> UrlReport:
    try:
        return lint_redis_url(url, name)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc.message}", hint=exc.hint) from None


def _timed_result(url: str, name: str) -> Result:
    watch = Stopwatch()
    result = report_to_result(_lint_or_usage(url, name))
    result.duration_ms = watch.ms
    return result


def check_redis_urls(settings: Settings, urls: dict[str, str] | None = None) -> list[Result]:
    """Results for the given URLs, or for the three Redis variables plus their agreement."""
    from pmsops.urlread import VARIABLE_CLIENTS, read_all

    if urls:
        register_environment_secrets(urls)  # a URL given on the command line is as secret as one from the environment
        # a URL that redis-py would misread is bad input (exit 2): one line naming the characters to encode;
        # what only kombu would do differently (';', unix://) is a finding of the lint
        read_all(
            [
                (name, url, "kombu" if url.lower().startswith(("redis+socket://", "socket://")) else "redis-py")
                for name, url in urls.items()
                if "://" in url
            ]
        )
        return [_timed_result(url, name) for name, url in urls.items()]
    read_all([(name, settings.env.get(name), VARIABLE_CLIENTS[name]) for name in REDIS_URL_VARIABLES if "://" in (settings.env.get(name) or "")])
    watch = Stopwatch()
    reports = lint_environment(settings)
    if not reports:
        raise UsageError(
            "no URL given and none of REDIS_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND is set",
            hint="pass a URL in single quotes, or --env-file /root/pms_env.sh",
        )
    out = [report_to_result(r) for r in reports]
    for result in out:
        result.duration_ms = watch.ms / len(out)
    missing = [n for n in REDIS_URL_VARIABLES if not settings.env.get(n)]
    findings = compare_redis_urls(reports)
    notes = [f.message for f in findings]
    if missing:
        notes.append(f"not set: {', '.join(missing)} (the runbook sets all three to the same URL)")
    errors = [f for f in findings if f.level == "error"]
    if errors:
        out.append(
            results.fail(
                "consistency",
                "the Redis URLs disagree",
                notes=notes,
                hint="backend and worker must use identical REDIS_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND",
            )
        )
    elif findings or missing:
        summary = "the Redis URLs that are set agree on host, port and password" if missing else "the Redis URLs agree on host, port and password"
        out.append(results.warn("consistency", summary, notes=notes))
    else:
        out.append(results.ok("consistency", f"all {len(reports)} Redis URLs agree on host, port and password"))
    return out
