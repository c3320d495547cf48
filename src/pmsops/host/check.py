"""``pmsops host check``: every host-side diagnosis of the runbook in one run.

Each part runs in :func:`pmsops.results.run_check`, so a missing container or a
failing ``docker exec`` becomes one failed line and the other parts still run.
Only what makes *every* part fail (no docker CLI, no daemon, no permission) stops
the run at once, as one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pmsops import results
from pmsops.errors import PmsopsError
from pmsops.host.code_hash import DEFAULT_PATH, commit_result, hash_result, local_sha256
from pmsops.host.containers import inspect_cache, inspect_container, state_result
from pmsops.host.docker import DEFAULT_TIMEOUT, DaemonUnreachable, DockerNotFound, DockerPermissionDenied
from pmsops.host.envdiff import check_env_diff
from pmsops.host.logs import check_logs, validate_since
from pmsops.host.networks import check_networks
from pmsops.host.redis_password import find_requirepass, requirepass_result
from pmsops.host.worker_cmd import check_worker_cmd
from pmsops.results import Result, run_check

FATAL = (DockerNotFound, DaemonUnreachable, DockerPermissionDenied)
"""Failures no other part could get past: reported once, not once per part."""


@dataclass
class Targets:
    """The runbook's container names, each overridable from the command line."""

    redis: str = "coolify-redis"
    worker: str = "pms-worker-v2"
    backend: str = "pms-backend"
    required_networks: list[str] = field(default_factory=lambda: ["coolify"])
    resolve: list[str] = field(default_factory=list)
    since: str = "60m"
    local: str | None = None
    path: str = DEFAULT_PATH


def states(names: list[str], timeout: float) -> list[Result]:
    """``docker ps -a`` for our containers; a daemon-wide failure is raised, a missing container is a line."""
    out = []
    for name in dict.fromkeys(names):
        try:
            out.append(state_result(inspect_container(name, timeout)))
        except FATAL:
            raise
        except PmsopsError as exc:
            out.append(results.fail(f"{name} state", exc.message, hint=exc.hint))
    return out


@dataclass
class UrlPassword:
    """One Redis URL of one container, decoded by the client that reads that variable, against requirepass."""

    container: str
    variable: str
    decoded: str | None = field(repr=False)
    cause: str | None

    @property
    def label(self) -> str:
        return f"{self.container} {self.variable}"


def client_password(url: str, variable: str) -> str | None:
    """The password the variable's client sends: redis-py for REDIS_URL, kombu (Celery) for the broker and the
    result backend (both read the URL with kombu's ``url_to_parts``); None when it cannot read the URL."""
    from pmsops.urls import parse_with_kombu, parse_with_redis_py

    try:
        parsed = parse_with_redis_py(url.strip()) if variable == "REDIS_URL" else parse_with_kombu(url.strip())
    except (ValueError, KeyError):
        return None
    return parsed.get("password")


def compare_urls(containers: list[str], requirepass: str, timeout: float) -> tuple[list[UrlPassword], list[str]]:
    """Every Redis URL of every container against requirepass; (comparisons, containers that could not be inspected)."""
    from pmsops.passwords import likely_cause, register_secret
    from pmsops.settings import REDIS_URL_VARIABLES
    from pmsops.urlread import register_url_secrets
    from pmsops.urls import split_intended

    register_secret(requirepass)
    compared, problems = [], []
    for name in dict.fromkeys(containers):
        try:
            env = inspect_container(name, timeout).env
        except FATAL:
            raise
        except PmsopsError as exc:
            problems.append(exc.message)
            continue
        for variable in REDIS_URL_VARIABLES:
            url = env.get(variable)
            if not url:
                continue
            register_url_secrets(url)
            decoded = client_password(url, variable)
            try:
                written = split_intended(url).password
            except PmsopsError:
                written = None
            cause = None if decoded == requirepass else likely_cause(written, decoded, requirepass) or "the passwords differ"
            compared.append(UrlPassword(name, variable, decoded, cause))
    return compared, problems


def password_hash_result(compared: list[UrlPassword], problems: list[str], found, redis: str) -> Result:
    """One line for all Redis URLs: which ones do not carry requirepass, by container and variable."""
    from pmsops.redaction import fingerprint

    notes = [
        f"{c.label}: {'match' if c.cause is None else 'MISMATCH'} (password as its client reads it: "
        f"{fingerprint(c.decoded) if c.decoded is not None else 'none'})"
        for c in compared
    ]
    notes.append(f"{redis} requirepass ({found.source}): {found.fingerprint()}")
    notes += problems
    wrong = [c for c in compared if c.cause is not None]
    details = {
        "urls": [{"container": c.container, "variable": c.variable, "match": c.cause is None, "likely_cause": c.cause} for c in compared],
        "not_inspected": problems,
    }
    if wrong:
        causes = "; ".join(dict.fromkeys(f"{c.label}: {c.cause}" for c in wrong))
        return results.fail(
            "password-hash",
            f"mismatch: {', '.join(c.label for c in wrong)} {'does' if len(wrong) == 1 else 'do'} not carry {redis}'s requirepass",
            notes=notes,
            details=details,
            hint=f"likely cause — {causes}; set the exact value with pmsops encode-redis-password",
        )
    if problems:
        summary = f"{len(compared)} Redis URL(s) match, but not every container could be compared" if compared else "no Redis URL could be compared"
        return results.fail(
            "password-hash",
            summary,
            notes=notes,
            details=details,
            hint="check the container names (--worker, --backend): docker ps -a --format '{{.Names}}'",
        )
    if not compared:
        return results.skip(
            "password-hash", "no REDIS_URL, CELERY_BROKER_URL or CELERY_RESULT_BACKEND to compare with requirepass", notes=notes, details=details
        )
    where = " and ".join(dict.fromkeys(c.container for c in compared))
    return results.ok("password-hash", f"match: all {len(compared)} Redis URLs of {where} carry {redis}'s requirepass", notes=notes, details=details)


def redis_section(targets: Targets, timeout: float, wrong: list[str] | None = None) -> list[Result]:
    """requirepass is set, and every Redis URL of the worker and the backend carries exactly that password.

    ``wrong`` collects the "container VARIABLE" labels that do not (the logs part points its auth hint at them).
    A container that cannot be inspected fails the comparison line only: the requirepass line stays.
    """
    found = find_requirepass(targets.redis, timeout)
    out = [requirepass_result(found)]

    def compare() -> Result:
        compared, problems = compare_urls([targets.worker, targets.backend], found.value, timeout)
        if wrong is not None:
            wrong.extend(c.label for c in compared if c.cause is not None)
        return password_hash_result(compared, problems, found, targets.redis)

    return out + run_check("password-hash", compare)


def logs_auth_hint(wrong: list[str], compared: bool) -> str | None:
    """The logs' auth hint, pointed at the URL that is actually wrong (None: the default hint)."""
    if wrong:
        return (
            f"the wrong Redis URL: {', '.join(wrong)} (its password differs from requirepass; password-hash above): set the exact value "
            "(pmsops encode-redis-password) and restart the container (runbook: Redis Authentication Errors)"
        )
    if compared:
        return (
            "every Redis URL of the inspected containers carries requirepass now: the errors predate a fix (restart the worker) "
            "or come from another client (runbook: Redis Authentication Errors)"
        )
    return None


def code_section(targets: Targets, timeout: float) -> list[Result]:
    """The worker's code against a local checkout (with --local) and the backend's git commit."""
    out = [hash_result(targets.worker, targets.path, targets.local, timeout)] if targets.local else []
    return out + run_check("git commit", lambda: commit_result(targets.worker, targets.backend, timeout))


def run_host_check(targets: Targets | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Result]:
    """All parts, in the order an operator would walk the runbook."""
    t = targets or Targets()
    validate_since(t.since)
    if t.local:
        local_sha256(t.local)  # bad input is exit 2 before docker is asked anything
    wrong: list[str] = []
    with inspect_cache():
        out = states([t.redis, t.worker, t.backend], timeout)
        out += run_check("requirepass", lambda: redis_section(t, timeout, wrong))
        compared = any(r.name == "password-hash" and r.status in ("ok", "fail") and r.details.get("urls") for r in out)
        out += run_check("start command", lambda: check_worker_cmd(t.worker, timeout=timeout, with_state=False))
        out += run_check("networks", lambda: check_networks(t.worker, t.required_networks, t.resolve, timeout, with_state=False))
        out += run_check("environment", lambda: check_env_diff(t.backend, t.worker, timeout))
        out += run_check("logs", lambda: check_logs(t.worker, t.since, timeout=timeout, with_state=False, auth_hint=logs_auth_hint(wrong, compared)))
        out += run_check("code", lambda: code_section(t, timeout))
    return out
