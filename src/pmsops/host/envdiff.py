"""Runbook: "Required Environment Variables": the worker must have the backend's configuration.

"Copy ALL of these environment variables from pms-backend to pms-worker", and
"JWT secrets must EXACTLY match". Missing variables cause "cryptic task
failures"; differing ones cause tokens that do not validate and a worker that
listens on another broker. Values are never shown, not even harmless ones: a value
that differs is shown as its length and SHA-256 prefix, which is enough to tell
"same" from "not the same" and which one changed.
"""

from __future__ import annotations

from typing import Mapping

from pmsops import results
from pmsops.errors import UsageError
from pmsops.host.containers import inspect_container, register_env_secrets
from pmsops.host.docker import DEFAULT_TIMEOUT
from pmsops.redaction import fingerprint
from pmsops.results import Result
from pmsops.settings import REDIS_URL_VARIABLES, WORKER_RECOMMENDED_VARIABLES, WORKER_REQUIRED_VARIABLES

OPTIONAL_VARIABLES = ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SENTRY_DSN", "LOG_LEVEL", "ENVIRONMENT")
"""The runbook's "Optional (if used in backend)": expected in the worker only when the backend has them."""

CONTAINER_SPECIFIC = frozenset(
    {
        "HOSTNAME",
        "HOME",
        "PATH",
        "PWD",
        "TERM",
        "SHLVL",
        "PORT",
        "HOST",
        "COOLIFY_CONTAINER_NAME",
        "COOLIFY_FQDN",
        "COOLIFY_URL",
        "COOLIFY_RESOURCE_UUID",
        "COOLIFY_BRANCH",
        "SERVICE_FQDN",
        "SERVICE_URL",
    }
)
"""Variables that differ between any two containers by design: left out of the "other variables" list."""

MAX_NOTES = 20
REDIS_HINT = (
    "backend and worker must use identical REDIS_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND with the password "
    "URL-encoded: pmsops encode-redis-password --host coolify-redis"
)
COPY_HINT = "copy them from {a} (Coolify → {b} → Environment Variables), then Redeploy {b} (runbook: Required Environment Variables)"


def _differs(name: str, a: Mapping[str, str], b: Mapping[str, str], a_name: str, b_name: str) -> str:
    """``NAME differs: a <fingerprint> vs b <fingerprint>``: one salt for both sides, so equal fingerprints mean equal values.

    (Not ``NAME: …``: that is the shape of a secret in a log line and the redactor masks what follows it.)
    """
    return f"{name} differs: {a_name} {fingerprint(a[name])} vs {b_name} {fingerprint(b[name])}"


def _limited(notes: list[str]) -> list[str]:
    return notes[:MAX_NOTES] + ([f"… and {len(notes) - MAX_NOTES} more (see --json)"] if len(notes) > MAX_NOTES else [])


def missing_result(a: Mapping[str, str], b: Mapping[str, str], a_name: str, b_name: str) -> Result:
    """Required variables the worker lacks (a variable set to an empty string counts as missing)."""
    missing = [n for n in WORKER_REQUIRED_VARIABLES if not b.get(n)]
    details = {"missing": missing, "checked": list(WORKER_REQUIRED_VARIABLES)}
    if not missing:
        return results.ok("required variables", f"{b_name} has all {len(WORKER_REQUIRED_VARIABLES)} required variables", details=details)
    notes = [f"{n}: missing in {b_name}" + ("" if a.get(n) else f" (and in {a_name})") for n in missing]
    return results.fail(
        "required variables", f"{b_name} lacks {', '.join(missing)}", hint=COPY_HINT.format(a=a_name, b=b_name), notes=notes, details=details
    )


def recommended_result(a: Mapping[str, str], b: Mapping[str, str], a_name: str, b_name: str) -> Result:
    """The feature flags and health checks, and the optional variables the backend uses."""
    missing = [n for n in WORKER_RECOMMENDED_VARIABLES if not b.get(n)]
    missing += [n for n in OPTIONAL_VARIABLES if a.get(n) and not b.get(n)]
    details = {"missing": missing}
    if not missing:
        return results.ok("recommended variables", f"{b_name} has the feature flags and the optional variables {a_name} uses", details=details)
    return results.warn("recommended variables", f"{b_name} lacks {', '.join(missing)}", hint=COPY_HINT.format(a=a_name, b=b_name), details=details)


def values_result(a: Mapping[str, str], b: Mapping[str, str], a_name: str, b_name: str) -> Result:
    """Runbook variables set on both sides with different values (Redis URLs are judged by meaning, below)."""
    names = [n for n in (*WORKER_REQUIRED_VARIABLES, *WORKER_RECOMMENDED_VARIABLES, *OPTIONAL_VARIABLES) if n not in REDIS_URL_VARIABLES]
    differ = [n for n in names if a.get(n) and b.get(n) and a[n] != b[n]]
    details = {"differ": differ}
    if not differ:
        return results.ok("shared values", "the runbook's variables set in both have the same values", details=details)
    notes = [_differs(n, a, b, a_name, b_name) for n in differ]
    required = [n for n in differ if n in WORKER_REQUIRED_VARIABLES]
    make = results.fail if required else results.warn
    verb = "differs" if len(differ) == 1 else "differ"
    summary = f"{', '.join(differ)} {verb} between {a_name} and {b_name}" + (" (they must match exactly)" if required else "")
    return make("shared values", summary, hint=f"set {b_name}'s values to {a_name}'s, then Redeploy {b_name}", notes=notes, details=details)


def _lint(url: str, label: str):
    """A :class:`pmsops.urls.UrlReport`, or the one line saying why the value is no Redis URL."""
    from pmsops.urls import lint_redis_url

    try:
        return lint_redis_url(url, label), None
    except UsageError as exc:
        return None, f"{label}: {exc.message}"


def redis_urls_result(a: Mapping[str, str], b: Mapping[str, str], a_name: str, b_name: str) -> Result:
    """All Redis URLs of both sides must read the same host, port and password (``compare_redis_urls``)."""
    from pmsops.urls import compare_redis_urls, describe

    reports, notes, unparsable = [], [], []
    for side, env in ((a_name, a), (b_name, b)):
        for name in REDIS_URL_VARIABLES:
            if not env.get(name):
                continue
            report, problem = _lint(env[name], f"{side} {name}")
            if report is None:
                unparsable.append(problem)
                continue
            reports.append(report)
            notes.append(f"{report.name}: {describe(report)}")
            notes += [f"  error: {f.message}" for f in report.errors]
    findings = compare_redis_urls(reports)
    disagree = [f for f in findings if f.level == "error"]
    misread = [r.name for r in reports if r.errors]
    notes = unparsable + notes + [f"{f.level}: {f.message}" for f in findings]
    details = {"compared": [r.name for r in reports], "findings": [vars(f) for f in findings], "misread": misread, "not_redis_urls": len(unparsable)}
    if not reports and not unparsable:
        return results.skip("redis urls", f"no Redis URL is set in {a_name} or {b_name}", details=details)
    if disagree or misread or unparsable:
        if disagree:
            summary = f"the Redis URLs of {a_name} and {b_name} disagree on host, port or password"
        else:
            summary = f"{len(misread) + len(unparsable)} Redis URL(s) will be misread or rejected by clients"
        return results.fail("redis urls", summary, hint=REDIS_HINT, notes=notes, details=details)
    if findings:
        return results.warn(
            "redis urls", f"the {len(reports)} Redis URLs agree on host, port and password, not on the db", notes=notes, details=details
        )
    return results.ok("redis urls", f"the {len(reports)} Redis URLs agree on host, port and password", notes=notes, details=details)


def other_result(a: Mapping[str, str], b: Mapping[str, str], a_name: str, b_name: str) -> Result:
    """Everything else, for information: names (and fingerprints of differing values), never a status above ok."""
    known = {*WORKER_REQUIRED_VARIABLES, *WORKER_RECOMMENDED_VARIABLES, *OPTIONAL_VARIABLES, *CONTAINER_SPECIFIC}
    rest = sorted((set(a) | set(b)) - known)
    only_a = [n for n in rest if n in a and n not in b]
    only_b = [n for n in rest if n in b and n not in a]
    differ = [n for n in rest if n in a and n in b and a[n] != b[n]]
    notes = (
        [f"only in {a_name}: {n}" for n in only_a] + [f"only in {b_name}: {n}" for n in only_b] + [_differs(n, a, b, a_name, b_name) for n in differ]
    )
    details = {f"only_in_{a_name}": only_a, f"only_in_{b_name}": only_b, "differ": differ}
    summary = f"{len(only_a)} only in {a_name}, {len(only_b)} only in {b_name}, {len(differ)} with other values"
    return results.ok("other variables", summary, notes=_limited(notes), details=details)


def diff_environments(a: Mapping[str, str], b: Mapping[str, str], a_name: str = "pms-backend", b_name: str = "pms-worker-v2") -> list[Result]:
    """Compare backend ``a`` with worker ``b``; registers every secret of both before anything is built."""
    register_env_secrets(dict(a))
    register_env_secrets(dict(b))
    return [
        missing_result(a, b, a_name, b_name),
        recommended_result(a, b, a_name, b_name),
        values_result(a, b, a_name, b_name),
        redis_urls_result(a, b, a_name, b_name),
        other_result(a, b, a_name, b_name),
    ]


def check_env_diff(backend: str = "pms-backend", worker: str = "pms-worker-v2", timeout: float = DEFAULT_TIMEOUT) -> list[Result]:
    """``pmsops host env-diff``: ``Config.Env`` of two containers (works on stopped containers too)."""
    a = inspect_container(backend, timeout).env
    b = inspect_container(worker, timeout).env
    return diff_environments(a, b, backend, worker)


def diff_env_files(path_a: str, path_b: str) -> list[Result]:
    """``pmsops env diff FILE_A FILE_B``: the same comparison for shell-style env files (never executed)."""
    from pmsops.envfile import load_env_file

    a = load_env_file(path_a, base={}).values
    b = load_env_file(path_b, base={}).values
    return diff_environments(a, b, path_a, path_b)
