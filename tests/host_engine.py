"""A Coolify-like host on the session's real Docker engine (tests/docker_engine.py), for the host tests.

``coolify-redis`` runs redis-server with requirepass on its command line (network ``coolify``); ``pms-worker-v2``
and ``pms-backend`` are busybox containers with the runbook's Redis URLs, on ``coolify`` and ``supabase`` (where
the scenario's PostgreSQL answers as ``supabase-db``). ``host(name, env, …)`` adds a container for one test.
Import the fixtures into a test module: ``from host_engine import host, monkeypatch_module, _engine_env  # noqa: F401``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import pytest

REQUIREPASS = "Rq+9/x=Lz@7w?Qr#5"
ENCODED = quote(REQUIREPASS, safe="")
GOOD_URL = f"redis://:{ENCODED}@coolify-redis:6379/0"
RAW_URL = f"redis://:{REQUIREPASS}@coolify-redis:6379/0"
"""The password pasted without encoding: kombu and redis-py cut it at the raw '/' (a truncated password)."""


@pytest.fixture(scope="module")
def host(docker_scenario, monkeypatch_module):
    """The Coolify-like containers on the real engine; ``docker`` (PATH) talks to it through DOCKER_HOST."""
    engine = docker_scenario.engine
    monkeypatch_module.setenv("DOCKER_HOST", engine.host)
    redis = "/usr/bin/redis-server"
    engine.docker("run", "-d", "--name", "coolify-redis", "--network", "coolify", "--user", "10002", "-v", "/usr:/usr:ro", "pmsops-base",
                  redis, "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/tmp", "--requirepass", REQUIREPASS)
    made = ["coolify-redis"]

    def container(name: str, env: dict[str, str], networks=("coolify", "supabase"), script: str = "sleep 3600", python: bool = True,
                  slow_dns: bool = False, aliases: tuple[str, ...] = ()) -> str:
        """A busybox container (python3 on PATH unless ``python=False``); ``slow_dns``: a name no network knows takes 8 s."""
        path = f"{Path(sys.prefix).resolve()}/bin:/bin" if python else "/bin"
        env = {"PATH": path, **env}
        extra = ("--dns-opt", "timeout:4", "--dns-opt", "attempts:2") if slow_dns else ()
        extra += tuple(a for alias in aliases for a in ("--network-alias", alias))
        docker_scenario.create_worker(name, env, networks=networks, user="10001", command=("/bin/busybox", "sh", "-c", script), extra=extra)
        engine.docker("start", name)
        made.append(name)
        return name

    urls = {"REDIS_URL": GOOD_URL, "CELERY_BROKER_URL": GOOD_URL, "CELERY_RESULT_BACKEND": GOOD_URL}
    container("pms-worker-v2", urls)
    container("pms-backend", urls)
    container.made = made
    yield container
    docker_scenario.remove(*made)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(autouse=True)
def _engine_env(host, monkeypatch, docker_scenario):
    """conftest's clean environment runs per test: point docker at the engine again."""
    monkeypatch.setenv("DOCKER_HOST", docker_scenario.engine.host)
