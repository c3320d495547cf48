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


def redis_section(targets: Targets, timeout: float) -> list[Result]:
    """requirepass is set, and the worker's REDIS_URL carries exactly that password."""
    from pmsops.passwords import compare_result

    found = find_requirepass(targets.redis, timeout)
    out = [requirepass_result(found)]
    env = inspect_container(targets.worker, timeout).env
    url = env.get("REDIS_URL") or env.get("CELERY_BROKER_URL")
    if not url:
        return out + [results.skip("password-hash", f"{targets.worker} has no REDIS_URL to compare with requirepass")]
    compared = run_check("password-hash", lambda: compare_result(url, found.value, f"container {targets.redis} ({found.source})"))
    for result in compared:
        result.notes.insert(0, f"{targets.worker} REDIS_URL vs {targets.redis} requirepass")
    return out + compared


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
    with inspect_cache():
        out = states([t.redis, t.worker, t.backend], timeout)
        out += run_check("requirepass", lambda: redis_section(t, timeout))
        out += run_check("start command", lambda: check_worker_cmd(t.worker, timeout=timeout, with_state=False))
        out += run_check("networks", lambda: check_networks(t.worker, t.required_networks, t.resolve, timeout, with_state=False))
        out += run_check("environment", lambda: check_env_diff(t.backend, t.worker, timeout))
        out += run_check("logs", lambda: check_logs(t.worker, t.since, timeout=timeout, with_state=False))
        out += run_check("code", lambda: code_section(t, timeout))
    return out
