"""A Coolify-like host on the session's real Docker engine (tests/docker_engine.py), for the host tests.

``coolify-redis`` runs redis-server with requirepass on its command line (network ``coolify``); ``pms-worker-v2``
and ``pms-backend`` are busybox containers with the runbook's Redis URLs, on ``coolify`` and ``supabase`` (where
the scenario's PostgreSQL answers as ``supabase-db``). ``host(name, env, …)`` adds a container for one test.
Import the fixtures into a test module: ``from host_engine import host, monkeypatch_module, _engine_env  # noqa: F401``.
"""

from __future__ import annotations

import copy
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


# --- the recorded deployment, rebuilt on the real engine ----------------------------------------------------------


class Deployment:
    """pms-backend and pms-worker-v2 as real containers with the recorded environment and worker logs.

    The editing API mirrors the fake's (``env``, ``set_env``, ``logs``, ``logs_variant``, ``stop``, ``remove``):
    each edit re-creates the container, which prints its log text (stdout, then stderr) and sleeps, or exits
    with the given code. Docker itself then answers ``inspect``, ``logs`` and ``exec``.
    """

    def __init__(self, scenario, root: Path) -> None:
        import json

        from host_helpers import RECORDED

        self.scenario, self.engine, self.root = scenario, scenario.engine, root
        self.specs: dict[str, dict] = {}
        self.running: dict[str, dict] = {}
        """The spec each existing container was made from: an unchanged one is reused by the next test."""
        for name in ("pms-backend", "pms-worker-v2"):
            obj = json.loads((RECORDED / "containers" / f"{name}.json").read_text(encoding="utf-8"))[0]
            env = dict(e.split("=", 1) for e in obj["Config"]["Env"])
            env["PATH"] = "/bin:" + env.get("PATH", "")
            logs = {s: (RECORDED / "logs" / f"{name}.{s}").read_text(encoding="utf-8") if (RECORDED / "logs" / f"{name}.{s}").exists() else ""
                    for s in ("stdout", "stderr")}
            self.specs[name] = {"env": env, "exit": None, **logs}
        self.recorded = copy.deepcopy(self.specs)
        self.made: set[str] = set()

    def reset(self) -> "Deployment":
        """Back to the recorded deployment: only containers a test changed are made again."""
        self.specs = copy.deepcopy(self.recorded)
        for name, spec in self.specs.items():
            if self.running.get(name) != spec:
                self._create(name)
        return self

    def _create(self, name: str) -> None:
        import time

        spec = self.specs[name]
        self.engine.docker("rm", "-f", name, check=False)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        for stream in ("stdout", "stderr"):
            (folder / stream).write_text(spec[stream], encoding="utf-8")
            (folder / stream).chmod(0o644)
        end = f"exit {spec['exit']}" if spec["exit"] is not None else "echo -n > /tmp/printed; sleep 3600"
        script = f"cat /logs/stdout; cat /logs/stderr >&2; {end}"
        self.scenario.create_worker(name, spec["env"], networks=("coolify", "supabase"), user="10001", command=("/bin/busybox", "sh", "-c", script),
                                    extra=("-v", f"{folder}:/logs:ro"))
        self.engine.docker("start", name)
        self.made.add(name)
        self.running[name] = copy.deepcopy(spec)
        deadline = time.monotonic() + 20
        if spec["exit"] is not None:
            self.engine.wait_exit(name, 20)
            return
        while self.engine.docker("exec", name, "/bin/busybox", "test", "-e", "/tmp/printed", check=False).returncode != 0:
            assert time.monotonic() < deadline, f"{name} did not print its logs"
            time.sleep(0.05)

    def env(self, name: str) -> dict[str, str]:
        return dict(self.specs[name]["env"])

    def set_env(self, name: str, **values: str | None) -> None:
        env = self.specs[name]["env"]
        for key, value in values.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self._create(name)

    def logs(self, name: str, stdout: str = "", stderr: str = "") -> None:
        self.specs[name].update(stdout=stdout, stderr=stderr)
        self._create(name)

    def logs_variant(self, name: str, variant: str) -> None:
        from host_helpers import RECORDED

        read = lambda suffix: (RECORDED / "variants" / f"{variant}.{suffix}").read_text(encoding="utf-8") if (RECORDED / "variants" / f"{variant}.{suffix}").exists() else ""  # noqa: E731
        self.logs(name, read("stdout"), read("stderr"))

    def stop(self, name: str, exit_code: int = 1) -> None:
        self.specs[name]["exit"] = exit_code
        self._create(name)

    def remove(self, name: str) -> None:
        self.engine.docker("rm", "-f", name, check=False)
        self.specs.pop(name, None)
        self.running.pop(name, None)
        self.made.discard(name)

    def close(self) -> None:
        for name in list(self.made):
            self.engine.docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def _deployment(docker_scenario, tmp_path_factory):
    built = Deployment(docker_scenario, tmp_path_factory.mktemp("deployment"))
    yield built
    built.close()


@pytest.fixture
def deployment(_deployment, docker_scenario, monkeypatch):
    """The recorded pms-backend and pms-worker-v2, running on the real engine (see :class:`Deployment`), as recorded
    at the start of every test."""
    monkeypatch.setenv("DOCKER_HOST", docker_scenario.engine.host)
    return _deployment.reset()
