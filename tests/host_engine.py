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
    engine.docker(
        "run",
        "-d",
        "--name",
        "coolify-redis",
        "--network",
        "coolify",
        "--user",
        "10002",
        "-v",
        "/usr:/usr:ro",
        "pmsops-base",
        redis,
        "--port",
        "6379",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/tmp",
        "--requirepass",
        REQUIREPASS,
    )
    made = ["coolify-redis"]

    def container(
        name: str,
        env: dict[str, str],
        networks=("coolify", "supabase"),
        script: str = "sleep 3600",
        python: bool = True,
        slow_dns: bool = False,
        aliases: tuple[str, ...] = (),
    ) -> str:
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
            logs = {
                s: (RECORDED / "logs" / f"{name}.{s}").read_text(encoding="utf-8") if (RECORDED / "logs" / f"{name}.{s}").exists() else ""
                for s in ("stdout", "stderr")
            }
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
        self.scenario.create_worker(
            name,
            spec["env"],
            networks=("coolify", "supabase"),
            user="10001",
            command=("/bin/busybox", "sh", "-c", script),
            extra=("-v", f"{folder}:/logs:ro"),
        )
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

        read = lambda suffix: (
            (RECORDED / "variants" / f"{variant}.{suffix}").read_text(encoding="utf-8")
            if (RECORDED / "variants" / f"{variant}.{suffix}").exists()
            else ""
        )  # noqa: E731
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


# --- the whole recorded host: coolify-redis, pms-backend and pms-worker-v2 from the recorded deployment ----------------


class RecordedHost:
    """The recorded Coolify host rebuilt on the real engine, for ``host check``.

    ``coolify-redis`` runs redis-server with the recorded requirepass; the worker runs an image imported here whose CMD
    is the runbook's ``bash /app/scripts/ops/start_worker.sh`` (which prints the recorded logs and sleeps), with the
    recorded environment, /app/app holding the deployed sync engine file, and python3/sha256sum on its PATH; the
    backend has the recorded environment. Worker and backend are on ``coolify`` and ``supabase``.
    """

    def __init__(self, scenario, root: Path) -> None:
        import json
        import uuid

        from host_helpers import RECORDED, REDIS_PASSWORD

        self.IMAGE = f"ro0wsk8gcs4wo4c0gk8wkgws:{uuid.uuid4().hex}"  # a Coolify tag (<application uuid>:<commit>), one per host
        self.scenario, self.engine, self.root = scenario, scenario.engine, root
        self.made: list[str] = []
        read = lambda kind, name: json.loads((RECORDED / kind / f"{name}.json").read_text(encoding="utf-8"))[0]  # noqa: E731
        self.env = {name: dict(e.split("=", 1) for e in read("containers", name)["Config"]["Env"]) for name in ("pms-backend", "pms-worker-v2")}
        files = json.loads((RECORDED / "exec" / "pms-worker-v2.json").read_text(encoding="utf-8"))["files"]
        self.app = root / "app"
        for path, text in files.items():
            target = self.app / path[len("/app/app/") :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        for stream in ("stdout", "stderr"):
            (self.logs / stream).write_text((RECORDED / "logs" / f"pms-worker-v2.{stream}").read_text(encoding="utf-8"), encoding="utf-8")
        self.tools = root / "tools"
        self.tools.mkdir()
        for tool in ("python3", "sha256sum"):
            (self.tools / tool).symlink_to(f"/usr/bin/{tool}")
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        self.password = REDIS_PASSWORD
        self._image()

    def _image(self) -> None:
        import io
        import json
        import tarfile

        from docker_engine import base_rootfs

        data = io.BytesIO(base_rootfs({"app": 10001}, ["/opt/tools", "/logs"], {"/app": 10001}))
        with tarfile.open(fileobj=data, mode="a") as tar:
            for path, text in (
                ("bin/bash", '#!/bin/sh\nexec /bin/sh "$@"\n'),
                ("app/scripts/ops/start_worker.sh", "#!/bin/sh\ncat /logs/stdout\ncat /logs/stderr >&2\nexec sleep 3600\n"),
            ):
                body = text.encode()
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(body), 0o755
                tar.addfile(info, io.BytesIO(body))
        self.engine.docker(
            "import",
            "--change",
            'CMD ["bash","/app/scripts/ops/start_worker.sh"]',
            "--change",
            "USER app",
            "--change",
            "WORKDIR /app",
            "-",
            self.IMAGE,
            input=data.getvalue(),
        )

    def redis(
        self, name: str = "coolify-redis", cmd: tuple[str, ...] | None = None, env: dict[str, str] | None = None, conf: str | None = None
    ) -> str:
        """Redis as Coolify runs it: requirepass on the command line (or ``cmd``), ``env``, ``conf`` at /etc/redis/redis.conf."""
        args = []
        if env:
            args += ["--env-file", str(self.scenario.env_file(name, env))]
        if conf is not None:
            local = self.root / f"{name}.conf"
            local.write_text(conf, encoding="utf-8")
            local.chmod(0o644)
            args += ["-v", f"{local}:/etc/redis/redis.conf:ro"]
        command = cmd or ("/usr/bin/redis-server", "--save", "20", "1", "--loglevel", "warning", "--dir", "/tmp", "--requirepass", self.password)
        self.engine.docker(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "coolify",
            "--network-alias",
            "coolify-redis",
            "--user",
            "10002",
            "-v",
            "/usr:/usr:ro",
            *args,
            "pmsops-base",
            *command,
        )
        self.made.append(name)
        return name

    def plant_secret(self, secret: str) -> None:
        """``secret`` everywhere a real deployment keeps secrets (as the fake's ``use_secret``): requirepass, REDIS_PASSWORD,
        redis.conf, the backend's and worker's variables and URLs (the worker's REDIS_URL raw), and worker log lines."""
        import json
        from urllib.parse import quote

        from host_helpers import RECORDED

        encoded = quote(secret, safe="")
        self.password = secret
        url = f"redis://:{encoded}@coolify-redis:6379/0"
        for name in ("pms-backend", "pms-worker-v2"):
            self.env[name].update(
                REDIS_URL=url,
                CELERY_BROKER_URL=url,
                CELERY_RESULT_BACKEND=url,
                JWT_SECRET=secret,
                SUPABASE_JWT_SECRET=secret,
                ENCRYPTION_KEY=secret,
                DATABASE_URL=f"postgresql+asyncpg://postgres:{encoded}@supabase-db:5432/postgres",
                SERVICE_PASSWORD_REDIS=secret,
            )
        self.env["pms-worker-v2"].update(REDIS_URL=f"redis://:{secret}@coolify-redis:6379/0", JWT_SECRET=secret + "x")
        stderr = (
            (RECORDED / "logs" / "pms-worker-v2.stderr").read_text(encoding="utf-8")
            + "".join(
                f"[2025-12-29 12:30:0{i},000: ERROR/MainProcess] {line}\n"
                for i, line in enumerate(
                    [
                        f"consumer: Cannot connect to redis://:{secret}@coolify-redis:6379/0: Authentication required.",
                        f"AUTH {secret} failed: invalid username-password pair or user is disabled.",
                        f"settings: password={encoded} jwt_secret={secret}: Connection refused",
                        f"Authentication required: redis.from_url({'redis://:' + secret + '@coolify-redis'!r}) password={secret!r}",
                        f"config dump {json.dumps({'REDIS_PASSWORD': secret}, ensure_ascii=False)}: Temporary failure in name resolution",
                    ]
                )
            )
            + "Traceback (most recent call last):\n"
        )
        (self.logs / "stderr").write_text(stderr, encoding="utf-8")
        self.redis(env={"REDIS_PASSWORD": secret}, conf='requirepass "' + secret.replace("\\", "\\\\").replace('"', '\\"') + '"\n')
        self.backend()
        self.worker()

    def worker(self, name: str = "pms-worker-v2", cmd: tuple[str, ...] = (), user: str | None = None) -> str:
        env = {**self.env["pms-worker-v2"], "PATH": "/opt/tools:/bin"}
        args = ["--user", user] if user is not None else []
        args += ["-v", "/usr:/usr:ro", "-v", f"{self.app}:/app/app:ro", "-v", f"{self.tools}:/opt/tools:ro", "-v", f"{self.logs}:/logs:ro"]
        self._create(name, env, args, cmd)
        deadline = __import__("time").monotonic() + 20
        while "ready." not in self.engine.logs(name) and not cmd:
            assert __import__("time").monotonic() < deadline, f"{name} did not print its logs"
            __import__("time").sleep(0.05)
        return name

    def backend(self, name: str = "pms-backend", cmd: tuple[str, ...] = ("/bin/busybox", "sleep", "3600")) -> str:
        self._create(name, {**self.env["pms-backend"], "PATH": "/bin"}, [], cmd)
        return name

    def wait_logs(self, name: str, text: str, timeout: float = 20.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while text not in self.engine.logs(name):
            assert time.monotonic() < deadline, f"{name} did not log {text!r}"
            time.sleep(0.05)

    def _create(self, name: str, env: dict[str, str], args: list[str], cmd: tuple[str, ...]) -> None:
        env_file = self.scenario.env_file(name, env)
        self.engine.docker("create", "--name", name, "--hostname", name, "--env-file", str(env_file), "--network", "coolify", *args, self.IMAGE, *cmd)
        self.engine.docker("network", "connect", "supabase", name)
        self.engine.docker("start", name, check=False)
        self.made.append(name)

    def remove(self, *names: str) -> None:
        self.engine.docker("rm", "-f", *names, check=False)
        self.made = [n for n in self.made if n not in names]

    def close(self) -> None:
        """Remove its containers and image (idempotent: a replaced host's names may belong to the next one)."""
        if self.made:
            self.engine.docker("rm", "-f", *self.made, check=False)
            self.made = []
        self.engine.docker("image", "rm", "-f", self.IMAGE, check=False)


@pytest.fixture
def recorded_host(docker_scenario, monkeypatch, tmp_path):
    """The recorded host (coolify-redis, pms-backend, pms-worker-v2) running on the real engine."""
    monkeypatch.setenv("DOCKER_HOST", docker_scenario.engine.host)
    built = RecordedHost(docker_scenario, tmp_path / "recorded-host")
    yield built
    built.close()


def start_recorded_host(host: RecordedHost) -> RecordedHost:
    host.redis()
    host.backend()
    host.worker()
    return host
