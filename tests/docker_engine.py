"""A real, private Docker engine for the test session (no registry, no traffic off this machine).

Why a real engine: the worker container's behaviour (PID 1 signals, HEALTHCHECK,
Docker's embedded DNS on user networks, ``docker stop``) cannot be faked credibly.
How it stays private and fast (see issue #13, "Docker"):

* ``dockerd`` runs with its own ``--data-root``, ``--exec-root``, ``--pidfile`` and
  socket under a temporary directory, without iptables, IP forwarding, masquerading,
  the default bridge or the userland proxy, and with ``--dns 127.0.0.1`` (one
  attempt, one second): a name Docker's DNS does not know fails fast and no query
  leaves the machine. User networks are ``--internal``.
* Images are ``docker import``-ed from a root filesystem built here from local files:
  ``busybox-static``, an ``/etc/passwd``, and mount points. Programs and their
  libraries (Python, the venv, redis-server, postgres) are bind-mounted read-only
  from this machine, so nothing is copied and nothing is pulled.

Reusable: :class:`DockerEngine` (start/stop, ``docker`` CLI bound to the private
socket, image import, networks) and :func:`base_rootfs`. The session fixture lives in
``tests/conftest.py``; the worker scenario in :mod:`tests.test_container_worker`.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCKERD_FLAGS = (
    "--iptables=false",
    "--ip6tables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--bridge=none",
    "--userland-proxy=false",
    "--dns",
    "127.0.0.1",
    "--dns-opt",
    "timeout:1",
    "--dns-opt",
    "attempts:1",
)
APP_UID = 10001


class EngineUnavailable(RuntimeError):
    """dockerd or busybox is missing, or the daemon did not come up."""


def docker_client() -> str:
    """The docker CLI that matches the daemon (docker.io's /usr/bin/docker before any other on PATH)."""
    dockerd = shutil.which("dockerd")
    if dockerd:
        sibling = Path(dockerd).resolve().parent.parent / "bin" / "docker"
        if sibling.exists():
            return str(sibling)
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return candidate
    raise EngineUnavailable("no docker CLI (apt-get install docker.io)")


def busybox_binary() -> str:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).exists():
            return candidate
    raise EngineUnavailable("no busybox (apt-get install busybox-static)")


@dataclass
class DockerEngine:
    """One private dockerd; ``docker(...)`` runs the CLI against it."""

    base: Path
    proc: subprocess.Popen | None = None
    client: str = field(default_factory=docker_client)

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "DOCKER_HOST": self.host,
            "HOME": str(self.base),
            "DOCKER_CONFIG": str(self.base / "client"),
        }

    def start(self, timeout: float = 30.0) -> "DockerEngine":
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise EngineUnavailable("no dockerd (apt-get install docker.io)")
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o711)  # containers' users must traverse to bind-mounted files below
        (self.base / "client").mkdir(exist_ok=True)
        log = open(self.base / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            [
                dockerd,
                "--data-root",
                str(self.base / "data"),
                "--exec-root",
                str(self.base / "exec"),
                "--pidfile",
                str(self.base / "dockerd.pid"),
                "--host",
                self.host,
                *DOCKERD_FLAGS,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineUnavailable(f"dockerd exited ({self.proc.returncode}): {self.log_tail()}")
            if self.socket.exists() and self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=5).returncode == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise EngineUnavailable(f"dockerd did not answer within {timeout:g} s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.base / "dockerd.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess:
        """Run the docker CLI against this engine; text output."""
        done = subprocess.run([self.client, *args], input=input, capture_output=True, env=self.env(), timeout=timeout)
        done.stdout, done.stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} … exited {done.returncode}: {done.stderr.strip()[-1500:]}")
        return done

    def import_rootfs(self, name: str, rootfs: bytes) -> str:
        """``docker import`` a tar archive (bytes) as image ``name``."""
        self.docker("import", "-", name, input=rootfs)
        return name

    def network(self, name: str) -> str:
        self.docker("network", "create", "--internal", name)
        return name

    def inspect(self, container: str, template: str) -> str:
        return self.docker("inspect", "-f", template, container).stdout.strip()

    def wait_exit(self, container: str, timeout: float) -> int:
        """Exit code of ``container`` once it has stopped (raises after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inspect(container, "{{.State.Status}}") == "exited":
                return int(self.inspect(container, "{{.State.ExitCode}}"))
            time.sleep(0.1)
        raise TimeoutError(f"{container} still running after {timeout:g} s")

    def logs(self, container: str) -> str:
        done = self.docker("logs", container, check=False)
        return done.stdout + done.stderr

    def stop(self) -> None:
        """Remove every container, stop the daemon, remove its directories (unmounting what it left)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False, timeout=20).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=60)
            # a user network's bridge outlives the daemon: left behind, ~30 of them exhaust Docker's address pools
            # ("could not find an available, non-overlapping IPv4 address pool") for every later engine on the machine
            networks = self.docker("network", "ls", "-q", "--filter", "type=custom", check=False, timeout=20).stdout.split()
            if networks:
                self.docker("network", "rm", *networks, check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        _unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def _unmount_below(base: Path) -> None:
    """Lazily unmount anything dockerd left mounted under ``base`` (deepest first)."""
    try:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    except OSError:
        return
    prefix = str(base.resolve()) + "/"
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def base_rootfs(users: dict[str, int], mount_points: list[str] = (), writable: dict[str, int] | None = None) -> bytes:
    """A tar archive: busybox-static with its applets, /etc/passwd and /etc/group for ``users``
    (name → uid, gid = uid), /tmp (1777), directories for bind mounts (0755 so any user can
    traverse them), ``writable`` directories (path → owner uid, 0755), and the merged-/usr links
    (/lib → usr/lib, /lib64 → usr/lib64) that libraries mounted from this machine expect."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made: set[str] = set()

        def add_dir(path: str, mode: int = 0o755, uid: int = 0) -> None:
            """Each directory once, parents first: a bind-mount point under /tmp (a clone under /tmp)
            would otherwise add /tmp a second time, and Docker refuses an image with duplicate paths."""
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub in made:
                    continue
                made.add(sub)
                info = tarfile.TarInfo(sub)
                last = i == len(parts)
                info.type, info.mode = tarfile.DIRTYPE, mode if last else 0o755
                info.uid = info.gid = uid if last else 0
                tar.addfile(info)

        def add_link(path: str, target: str) -> None:
            info = tarfile.TarInfo(path.strip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)

        def add_file(path: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "usr", "usr/lib", "usr/lib64", "proc", "sys", "dev"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_link("lib", "usr/lib")
        add_link("lib64", "usr/lib64")
        add_link("usr/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        tar.add(busybox_binary(), "bin/busybox")
        for applet in ("sh", "cat", "ls", "id", "env", "sleep", "true", "echo", "ps", "kill", "test"):
            add_link(f"bin/{applet}", "busybox")
        passwd = "".join(f"{name}:x:{uid}:{uid}:{name}:/tmp:/bin/sh\n" for name, uid in {"root": 0, **users}.items())
        group = "".join(f"{name}:x:{uid}:\n" for name, uid in {"root": 0, **users}.items())
        add_file("etc/passwd", passwd.encode())
        add_file("etc/group", group.encode())
        for point in mount_points:
            add_dir(point)
        for path, uid in (writable or {}).items():
            add_dir(path, 0o755, uid)
    return buffer.getvalue()


# --- the Coolify-like scenario: Redis on "coolify", PostgreSQL on "supabase", the worker on both --------------------


@dataclass
class Scenario:
    """Images, networks and dependency containers of the production layout, on a private engine.

    ``coolify`` (internal) holds ``redis`` (redis-server with a special-character requirepass);
    ``supabase`` (internal) holds ``supabase-db`` (PostgreSQL, scram). Worker containers run
    the image ``pmsops-worker`` as ``appuser`` (UID 10001) with Python, the venv and this
    checkout's ``src`` bind-mounted read-only, and without /usr/share/zoneinfo (time-zone
    data must come from the ``tzdata`` package, as in a slim image).
    """

    engine: DockerEngine
    redis_password: str
    pg_user: str
    pg_password: str
    pg_dir: Path
    src: Path
    env_dir: Path

    REDIS = "ct-redis"
    PG = "ct-pg"

    @property
    def python_mounts(self) -> list[str]:
        import sys

        base, venv = Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()
        return [
            "-v",
            f"{base}:{base}:ro",
            "-v",
            f"{venv}:{venv}:ro",
            "-v",
            f"{self.src}:/opt/pmsops/src:ro",
            "-v",
            "/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro",
        ]

    @property
    def python(self) -> str:
        import sys

        return str(Path(sys.prefix).resolve() / "bin" / "python")

    @property
    def pmsops(self) -> str:
        import sys

        return str(Path(sys.prefix).resolve() / "bin" / "pmsops")

    def worker_env(self, **overrides: str) -> dict[str, str]:
        from urllib.parse import quote

        redis = f"redis://:{quote(self.redis_password, safe='')}@redis:6379/0"
        env = {
            "DATABASE_URL": f"postgresql://{quote(self.pg_user, safe='')}:{quote(self.pg_password, safe='')}@supabase-db:5432/postgres",
            "REDIS_URL": redis,
            "CELERY_BROKER_URL": redis,
            "CELERY_RESULT_BACKEND": redis[:-1] + "1",
            "ENCRYPTION_KEY": "pz3uZ1Hn0Lrq3e9VJ0F1bq4Sg5k9m7Xw2c8yT6aD4hE=",
            "JWT_SECRET": "jwt-secret-for-tests-0123456789",
            "SUPABASE_JWT_SECRET": "jwt-secret-for-tests-0123456789",
            "JWT_AUDIENCE": "authenticated",
            "PYTHONPATH": "/opt/pmsops/src",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/tmp",
            "CELERY_CONCURRENCY": "2",
            "SYNC_REAP_INTERVAL": "0",
            "WORKER_BEACON_INTERVAL": "1",
            "WORKER_WAIT_INTERVAL": "0.5",
            "WORKER_WAIT_TIMEOUT": "30",
        }
        env.update(overrides)
        return env

    def env_file(self, name: str, env: dict[str, str]) -> Path:
        """Secrets go in a 0600 --env-file, never on a command line (ps would show them)."""
        from pmsops.safefile import write_text

        return write_text(self.env_dir / f"{name}.env", "".join(f"{k}={v}\n" for k, v in env.items()), "env file")

    def create_worker(
        self,
        name: str,
        env: dict[str, str],
        networks: tuple[str, ...] = ("coolify", "supabase"),
        user: str = str(APP_UID),
        command: tuple[str, ...] = (),
        health: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> str:
        """``docker create`` a worker container attached to ``networks`` (not started).

        ``health``: "cli" (``pmsops worker-check --liveness``) or "module" (``python -m pmsops.worker.alive``)
        as the HEALTHCHECK, every second."""
        # a shell string (docker runs it with /bin/sh -c): the paths quoted, as a checkout may sit under a path with a space
        health_cmd = {"cli": f"{shlex.quote(self.pmsops)} worker-check --liveness", "module": f"{shlex.quote(self.python)} -m pmsops.worker.alive"}
        health_args = (
            [
                "--health-cmd",
                health_cmd[health],
                "--health-interval",
                "1s",
                "--health-timeout",
                "5s",
                "--health-retries",
                "2",
                "--health-start-period",
                "60s",
            ]
            if health
            else []
        )
        args = [
            "create",
            "--name",
            name,
            "--hostname",
            name,
            "--user",
            user,
            "--workdir",
            "/app",
            "--env-file",
            str(self.env_file(name, env)),
            "--network",
            networks[0] if networks else "none",
            "--stop-timeout",
            "10",
            *self.python_mounts,
            *health_args,
            *extra,
            "pmsops-worker",
            *(command or (self.pmsops, "worker-start")),
        ]
        self.engine.docker(*args)
        for network in networks[1:]:
            self.engine.docker("network", "connect", network, name)
        return name

    def remove(self, *names: str) -> None:
        self.engine.docker("rm", "-f", *names, check=False)

    # --- dependencies ------------------------------------------------------------------------------------------
    def start_redis(self) -> None:
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.engine.docker(
            "run",
            "-d",
            "--name",
            self.REDIS,
            "--network",
            "coolify",
            "--network-alias",
            "redis",
            "--user",
            "10002",
            "-v",
            "/usr:/usr:ro",
            "pmsops-base",
            redis,
            "--port",
            "6379",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/tmp",
            "--requirepass",
            self.redis_password,
        )

    def start_postgres(self) -> None:
        from pmsops.sandbox.servers import find_binary

        owner = self.pg_dir.stat().st_uid
        postgres = find_binary("postgres")
        self.engine.docker(
            "run",
            "-d",
            "--name",
            self.PG,
            "--network",
            "supabase",
            "--network-alias",
            "supabase-db",
            "--user",
            f"{owner}:{owner}",
            "-v",
            "/usr:/usr:ro",
            "-v",
            f"{self.pg_dir}:/pgdata",
            "pmsops-base",
            postgres,
            "-D",
            "/pgdata",
            "-c",
            "listen_addresses=*",
            "-c",
            "unix_socket_directories=/tmp",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        )

    def pg_ready(self, timeout: float = 30.0) -> None:
        from pmsops.sandbox.servers import find_binary

        isready = find_binary("pg_isready")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.engine.docker("exec", self.PG, isready, "-q", "-h", "/tmp", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL container not ready within {timeout:g} s: {self.engine.logs(self.PG)[-1500:]}")

    def stop_postgres(self) -> None:
        """Fast shutdown (SIGINT): a smart shutdown would wait for every client."""
        self.engine.docker("kill", "-s", "INT", self.PG)
        self.engine.wait_exit(self.PG, 30)


def initdb(directory: Path, user: str, password: str) -> Path:
    """A PostgreSQL data directory whose superuser is ``user`` (scram from any address), owned by
    the service user (PostgreSQL refuses to run as root); returns the data directory."""
    import tempfile

    from pmsops.sandbox.servers import _demote, _service_user, find_binary

    owner = _service_user()
    base = Path(tempfile.mkdtemp(prefix="pmsops-ct-pg-", dir=directory))
    data = base / "data"
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    if owner:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    done = subprocess.run(
        [
            find_binary("initdb"),
            "-D",
            str(data),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        capture_output=True,
        preexec_fn=_demote(owner),
        env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        cwd=str(base),
    )
    pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-800:]}")
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
    return data


def start_scenario(base: Path, src: Path, redis_password: str, pg_user: str, pg_password: str) -> Scenario:
    """Engine, images, networks, Redis and PostgreSQL containers: the session's ~10 s."""
    import concurrent.futures

    base.mkdir(parents=True, exist_ok=True)
    engine = DockerEngine(base / "engine")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pg_dir = pool.submit(initdb, base, pg_user, pg_password)  # initdb while dockerd starts
        engine.start()
        try:
            import sys

            python_points = [str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve()), "/opt/pmsops/src", "/usr/lib/x86_64-linux-gnu"]
            engine.import_rootfs("pmsops-base", base_rootfs({"postgres": _pg_uid(), "redis": 10002, "appuser": APP_UID}, ["/pgdata"]))
            engine.import_rootfs("pmsops-worker", base_rootfs({"appuser": APP_UID}, python_points, {"/app": APP_UID}))
            engine.network("coolify")
            engine.network("supabase")
            env_dir = base / "env"
            env_dir.mkdir(mode=0o700, exist_ok=True)
            scenario = Scenario(engine, redis_password, pg_user, pg_password, pg_dir.result(), src, env_dir)
            scenario.start_redis()
            scenario.start_postgres()
            scenario.pg_ready()
        except BaseException:
            engine.stop()
            raise
    return scenario


def _pg_uid() -> int:
    from pmsops.sandbox.servers import _service_user

    owner = _service_user()
    return owner.pw_uid if owner else os.getuid()
