"""Shared fixtures: the CLI runner and real servers on free loopback ports.

Servers are session-scoped (2 cores: start each once). Passwords carry the
characters the runbook warns about, so every test exercises encoding for real.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmsops.redaction import REDACTOR

# '+ = @ : / ? # & %' and a non-ASCII letter, as the runbook's worst case.
REDIS_PASSWORD = "r3d+s=p@ss:w/rd?#&%ü"
PG_PASSWORD = "pg+p@ss:w/rd?#&%ä="
TESTS = Path(__file__).parent


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run ``pmsops ARGS`` in-process, through the same error handler as the real binary."""
    from click.testing import CliRunner

    from pmsops.cli.main import main

    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        code = main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return CliResult(code, stdout, stderr)


DOCKER_MODULES = frozenset(
    {
        "test_container_worker.py",
        "test_host_check.py",
        "test_host_code_hash.py",
        "test_host_docker_errors.py",
        "test_host_envdiff.py",
        "test_host_logs.py",
        "test_host_networks.py",
        "test_host_real_engine.py",
        "test_host_redis_password.py",
        "test_host_secrets.py",
        "test_host_worker_cmd.py",
    }
)
"""The modules with tests on the private Docker engine (fixture docker_scenario): under pytest-xdist they run on one worker."""

CONTAINER_SCENARIO = "test_container_worker.py"
"""The one container scenario ``make test`` runs (the worker image started, checked, frozen, stopped); the rest of the
Docker group is marked slow and runs in ``make test-full``."""

FIRST_GROUPS = ("docker", "test_faults_sync.py", "test_faults_leases.py", "test_url_parity.py")
"""The longest groups (the Docker tests, the fault scenarios, the hypothesis parity tests) are handed out first."""


def xdist_group(module: str) -> str:
    """The unit pytest-xdist hands to one worker: a test module (its module-scoped fixtures start once, as in a serial run),
    or "docker" for every module on the private Docker engine (one engine, started once; no two engines share the machine's
    bridge address pools)."""
    return "docker" if module in DOCKER_MODULES else module


def pytest_configure(config):
    _read_redis_py_version_once()


def _read_redis_py_version_once() -> None:
    """redis-py 8 reads its own package metadata (``importlib.metadata.version``: a walk of sys.path and an e-mail
    header parse, 5 ms on this machine) for every ``Connection`` it builds, for ``CLIENT SETINFO``; the URL-parity
    oracles build thousands, a third of those tests' CPU. The version cannot change while the tests run, so it is read
    once. Nothing else of redis-py changes: what it reads in a URL, how it connects."""
    try:
        import redis.utils
    except ImportError:
        return
    version = getattr(redis.utils, "get_lib_version", None)
    if version is not None and not hasattr(version, "cache_info"):
        redis.utils.get_lib_version = functools.cache(version)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs the suite on several workers (pytest-xdist): whole groups (:func:`xdist_group`) to one worker each.

    Our own scheduler rather than ``--dist loadgroup`` with ``xdist_group`` marks: pytest-xdist 3.8 marks a group by
    rewriting ``item._nodeid``, which pytest 9 no longer reads, so those marks group nothing."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(Path(nodeid.split("::", 1)[0]).name)

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(config, items):
    """Every Docker test's module is in DOCKER_MODULES, all but CONTAINER_SCENARIO marked slow; under xdist the longest groups come first (with
    ``--no-loadscope-reorder`` the scheduler keeps this order)."""
    stray = sorted({item.path.name for item in items if "docker_scenario" in getattr(item, "fixturenames", ())} - DOCKER_MODULES)
    if stray:
        raise pytest.UsageError(f"tests/conftest.py: add {', '.join(stray)} to DOCKER_MODULES (it uses the private Docker engine)")
    for item in items:
        if item.path.name in DOCKER_MODULES and item.path.name != CONTAINER_SCENARIO:
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):

        def rank(item) -> int:
            group = xdist_group(item.path.name)
            return FIRST_GROUPS.index(group) if group in FIRST_GROUPS else len(FIRST_GROUPS)

        items.sort(key=rank)  # stable: collection order within a group


@pytest.fixture
def cli():
    return invoke


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No test sees the machine's own Redis/DB variables, nor what an --env-file loaded in another test."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name in {
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "DATABASE_URL",
            "PMS_API_URL",
            "API",
            "API_BASE_URL",
            "BACKEND_URL",
            "TOKEN",
            "JWT_TOKEN",
            "SB_URL",
            "ANON_KEY",
            "EMAIL",
            "PASSWORD",
            "JWT_SECRET",
            "SUPABASE_JWT_SECRET",
            "ENCRYPTION_KEY",
            "NO_COLOR",
        } or name.startswith(("WORKER_WAIT_", "CELERY_")):
            monkeypatch.delenv(name, raising=False)
    yield
    REDACTOR.forget_all()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def redis_server():
    from pmsops.sandbox.servers import RedisServer

    server = RedisServer(REDIS_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    from pmsops.sandbox.servers import PostgresCluster

    cluster = PostgresCluster(user="pms user", password=PG_PASSWORD, database="pms").start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def black_hole_listener():
    """A TCP listener that accepts connections and never answers (a black-holed dependency)."""
    from pmsops.sandbox.processes import BlackHole

    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def black_hole(black_hole_listener):
    """The port of :func:`black_hole_listener`."""
    return black_hole_listener.port


@pytest.fixture(scope="session")
def refused_port():
    """A loopback port nothing listens on."""
    from pmsops.sandbox.servers import free_port

    return free_port()


# --- Celery workers -----------------------------------------------------------------------------


def start_worker(
    broker_url: str, name: str, app: str = "tests.apps.sleepy:app", concurrency: int = 2, extra_env: dict | None = None, pool: str = "threads"
):
    """A real ``celery worker`` subprocess (started by the sandbox's code); returns the Popen once it answers a ping."""
    import subprocess

    from pmsops.sandbox import processes

    # keep the caller's PYTHONPATH after the tests directory: a worktree's src/ must win over an installed pmsops
    pythonpath = os.pathsep.join(p for p in (str(TESTS.parent), os.environ.get("PYTHONPATH")) if p)
    env = {"CELERY_BROKER_URL": broker_url, "PYTHONPATH": pythonpath, **(extra_env or {})}
    argv = processes.python_argv(
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--pool",
        pool,
        "-c",
        str(concurrency),
        "-n",
        name,
        "-l",
        "WARNING",
        "--without-mingle",
        "--without-gossip",
    )
    proc = processes.spawn(argv, cwd=TESTS.parent, env=env, stderr=subprocess.PIPE)  # -P and a cwd we own: nothing planted is imported
    try:
        processes.wait_for_worker(broker_url, name, 30, exited=processes.exited(proc))
    except processes.NotReady as exc:
        if exc.exited:
            raise RuntimeError(f"worker {name} exited: {proc.stderr.read().decode(errors='replace')[-2000:]}") from None
        processes.stop(proc, grace=0)
        raise
    return proc


def stop_worker(proc) -> None:
    from pmsops.sandbox import processes

    processes.stop(proc)


@pytest.fixture(scope="session")
def worker_broker(redis_server):
    """The broker URL (db 1) that exactly one live test worker listens on."""
    return redis_server.url_for_db(1)


@pytest.fixture(scope="session")
def celery_worker(worker_broker):
    proc = start_worker(worker_broker, "w1@pmsops-test")
    yield "w1@pmsops-test"
    stop_worker(proc)


# --- a small HTTP server for /health/ready and friends ---------------------------------------------


@pytest.fixture
def http_stub():
    from pmsops.sandbox.processes import HttpStub

    stub = HttpStub()
    yield stub
    stub.close()


# --- the sync library: migrated database, fake platform, a real pmsops.sync worker --------------------

ENCRYPTION_KEY = "pz3uZ1Hn0Lrq3e9VJ0F1bq4Sg5k9m7Xw2c8yT6aD4hE="


@pytest.fixture(scope="session")
def sync_db(postgres):
    """The test database with the sync schema applied."""
    from pmsops.sync.maintenance import migrate_database

    migrate_database(postgres.url)
    return postgres.url


@pytest.fixture(scope="session")
def fake_platform():
    from pmsops.sandbox.fake_platform import FakePlatform

    platform = FakePlatform().start()
    yield platform
    platform.stop()


def sync_worker_env(redis_server, db: int, database_url: str, platform_url: str, **extra: str) -> dict[str, str]:
    broker = redis_server.url_for_db(db)
    return {
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "PLATFORM_BASE_URL": platform_url,
        "CELERY_CONCURRENCY": "4",
        "SYNC_RETRY_BASE": "0.05",  # retries at 0.05, 0.1, 0.2 s: the loop is the product's, the waiting is not
        "SYNC_REAP_INTERVAL": "0",
        **extra,
    }  # tests that insert stale logs must not race the worker's own sweep


@pytest.fixture(scope="session")
def sync_worker(redis_server, sync_db, fake_platform):
    """One real worker running pmsops.sync.worker:celery_app (threads pool, concurrency 4)."""
    env = sync_worker_env(redis_server, 3, sync_db, fake_platform.url)
    proc = start_worker(env["CELERY_BROKER_URL"], "sync@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=4, extra_env=env)
    yield env
    stop_worker(proc)


# --- the reference stack --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """One reference stack for the API and smoke tests (started by the same code as `pmsops sandbox up`)."""
    from pmsops.sandbox.stack import Sandbox

    stack = Sandbox.at(tmp_path_factory.mktemp("sandbox"))
    # tests stop a component and read readiness at once: no cached answer (the cache has a test of its own)
    stack.up(overrides={"READY_CACHE_SECONDS": "0"})
    yield stack
    stack.down()


# --- a real Docker engine (private dockerd, no registry, internal networks) ------------------------------------------


@pytest.fixture(scope="session")
def docker_scenario():
    """A private dockerd with the Coolify-like layout (see tests/docker_engine.py), started once, stopped after the session."""
    import shutil
    import tempfile

    from docker_engine import start_scenario

    base = Path(tempfile.mkdtemp(prefix="pmsops-docker-"))
    os.chmod(base, 0o711)  # PostgreSQL's service user must reach its data directory below
    scenario = start_scenario(base, TESTS.parent / "src", REDIS_PASSWORD, "pms user", PG_PASSWORD)
    yield scenario
    scenario.engine.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine(docker_scenario):
    """Just the engine (``engine.docker(...)``), for tests that bring their own containers."""
    return docker_scenario.engine
