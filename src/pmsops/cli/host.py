"""Host-server commands: ``host redis-password|worker-cmd|networks|code-hash|logs|env-diff|check`` and ``env diff``.

Thin wrappers: each command calls one function of :mod:`pmsops.host` and renders
its results. Library modules are imported inside the commands so ``pmsops --help``
stays light.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from pmsops.cli.common import JSON_OPTION, PLAIN, ReportOptions, finish_results, finite, report_options

host_app = typer.Typer(
    help="Docker diagnostics on the host server (HOST-SERVER-TERMINAL): the runbook's docker inspect/exec/logs procedures.",
    no_args_is_help=True,
)
env_app = typer.Typer(help="Compare environment files (backend vs worker) by name and fingerprint, never by value.", no_args_is_help=True)

DOCKER_TIMEOUT_OPTION = typer.Option(10.0, "--timeout", min=0.1, callback=finite, help="Seconds each docker call may take.")
WORKER_ARGUMENT = typer.Argument("pms-worker-v2", help="Worker container name.")
SINCE_OPTION = typer.Option("60m", "--since", help="Log window, as docker logs --since takes it (60m, 2h, a date).")
REQUIRE_OPTION = typer.Option(None, "--require", metavar="NETWORK", help="A network the container must be on; repeatable (default: coolify).")
RESOLVE_OPTION = typer.Option(
    None,
    "--resolve",
    metavar="NAME",
    help=(
        "Host name to resolve inside the container; repeatable (default: the hosts of its DATABASE_URL and REDIS_URL, else supabase-db and"
        " coolify-redis)."
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(host_app, name="host", rich_help_panel="Host server (runbook: HOST-SERVER-TERMINAL)")
    app.add_typer(env_app, name="env", rich_help_panel="Host server (runbook: HOST-SERVER-TERMINAL)")


@host_app.command("redis-password")
def redis_password(
    container: str = typer.Option("coolify-redis", "--container", help="Redis container name."),
    timeout: float = DOCKER_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Where Redis's requirepass is set (command, REDIS_PASSWORD or redis.conf): length and SHA-256 prefix only."""
    from pmsops.host.redis_password import check_redis_password

    finish_results(check_redis_password(container, timeout), "host redis-password", ReportOptions(json_mode))


@host_app.command("worker-cmd")
@report_options
def worker_cmd(
    container: str = WORKER_ARGUMENT,
    expect: Optional[str] = typer.Option(None, "--expect", help="Expected command (default: bash /app/scripts/ops/start_worker.sh)."),
    timeout: float = DOCKER_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Container CMD/ENTRYPOINT vs its image's: a difference is a Coolify Start Command override (runbook: Worker Starts with Wrong CMD)."""
    import shlex

    from pmsops.host.worker_cmd import check_worker_cmd

    expected = shlex.split(expect) if expect else None
    finish_results(check_worker_cmd(container, expected, timeout), "host worker-cmd", report)


@host_app.command("networks")
@report_options
def networks(
    container: str = WORKER_ARGUMENT,
    require: Optional[List[str]] = REQUIRE_OPTION,
    resolve: Optional[List[str]] = RESOLVE_OPTION,
    timeout: float = DOCKER_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Required Docker networks attached, and the database and Redis names resolvable inside (runbook: Networks (CRITICAL))."""
    from pmsops.host.networks import check_networks

    finish_results(check_networks(container, require, resolve, timeout), "host networks", report)


@host_app.command("code-hash")
def code_hash(
    container: str = typer.Option("pms-worker-v2", "--container", help="Container whose code to hash."),
    path: str = typer.Option("/app/app/channel_manager/core/sync_engine.py", "--path", help="File inside the container."),
    local: Optional[str] = typer.Option(
        None, "--local", help="The same file in your checkout, e.g. backend/app/channel_manager/core/sync_engine.py."
    ),
    compare_commit: Optional[str] = typer.Option(
        None, "--compare-commit", metavar="CONTAINER", help="Also compare git rev-parse HEAD with this container (e.g. pms-backend)."
    ),
    timeout: float = DOCKER_TIMEOUT_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """SHA-256 of a file in the container vs your checkout, and git commits (runbook: Verify Code Version, Stale Code After Deployment)."""
    from pmsops.host.code_hash import check_code_hash

    finish_results(check_code_hash(container, path, local, compare_commit, timeout), "host code-hash", ReportOptions(json_mode))


@host_app.command("logs")
@report_options
def logs(
    container: str = WORKER_ARGUMENT,
    since: str = SINCE_OPTION,
    tail: Optional[int] = typer.Option(None, "--tail", min=1, help="Only the last N lines."),
    timeout: float = DOCKER_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Scan docker logs for the ready line, tasks, and the runbook's red flags (auth, refused, DNS, root, Traceback)."""
    from pmsops.host.logs import check_logs

    finish_results(check_logs(container, since, tail, timeout), "host logs", report)


@host_app.command("env-diff")
@report_options
def env_diff(
    backend: str = typer.Argument("pms-backend", help="Container whose environment is the reference."),
    worker: str = typer.Argument("pms-worker-v2", help="Container that must have the same configuration."),
    timeout: float = DOCKER_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """Variables the worker lacks, values that differ (as SHA-256 prefixes) and the three Redis URLs (runbook: Required Environment Variables)."""
    from pmsops.host.envdiff import check_env_diff

    finish_results(check_env_diff(backend, worker, timeout), "host env-diff", report)


@host_app.command("check")
@report_options
def check(
    redis: str = typer.Option("coolify-redis", "--redis", help="Redis container."),
    worker: str = typer.Option("pms-worker-v2", "--worker", help="Worker container."),
    backend: str = typer.Option("pms-backend", "--backend", help="Backend container."),
    require: Optional[List[str]] = REQUIRE_OPTION,
    resolve: Optional[List[str]] = RESOLVE_OPTION,
    since: str = SINCE_OPTION,
    local: Optional[str] = typer.Option(None, "--local", help="Also compare the worker's sync_engine.py with this local file."),
    timeout: float = DOCKER_TIMEOUT_OPTION,
    report: ReportOptions = PLAIN,
) -> None:
    """All host diagnoses for the runbook's containers: state, requirepass, worker CMD, networks, environment, logs, code."""
    from pmsops.host.check import Targets, run_host_check

    targets = Targets(redis, worker, backend, list(require or ["coolify"]), list(resolve or []), since, local)
    finish_results(run_host_check(targets, timeout), "host check", report, title="pmsops host check")


@env_app.command("diff")
@report_options
def env_file_diff(
    file_a: str = typer.Argument(..., metavar="FILE_A", help="Reference env file (the backend's)."),
    file_b: str = typer.Argument(..., metavar="FILE_B", help="Env file that must match (the worker's)."),
    report: ReportOptions = PLAIN,
) -> None:
    """Compare two shell-style env files (never executed) as host env-diff compares containers."""
    from pmsops.host.envdiff import diff_env_files

    finish_results(diff_env_files(file_a, file_b), "env diff", report)
