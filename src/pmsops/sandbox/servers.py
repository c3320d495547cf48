"""Start private redis-server and PostgreSQL instances on free loopback ports.

Used by the test suite and by ``pmsops sandbox``: one way to run the real parts.
Passwords are written to files with mode 0600 (never put on a command line,
where ``ps`` would show them). PostgreSQL refuses to run as root, so when we are
root the cluster runs as the ``postgres`` user (or ``nobody``). Directories are
0700, files 0600 (written without following links), and the servers run with a
077 umask and their own directory as working directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Callable, TypeVar
from pathlib import Path
from urllib.parse import quote

from pmsops.sandbox import processes
from pmsops.sandbox.processes import LOOPBACK


class ServerError(RuntimeError):
    """A private server could not be started."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def find_binary(name: str) -> str:
    """``name`` on PATH, else in Debian's versioned PostgreSQL folder (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise ServerError(f"{name} not found: install it (apt-get install -y redis-server postgresql) or run make setup")


class PortTaken(ServerError):
    """The server's port was taken between :func:`free_port` and its bind (a parallel test worker, an outgoing connection)."""


T = TypeVar("T")

PORT_ATTEMPTS = 5
"""Ports a server started on a free port of its own tries before giving up (each lost race picks a new one)."""


def retrying_lost_ports(start: Callable[[], T], before_retry: Callable[[], object] = lambda: None) -> T:
    """``start()`` (which takes a new :func:`free_port` each time) until it does not lose its port to another process:
    at most :data:`PORT_ATTEMPTS` tries; ``before_retry`` clears what a lost try left behind."""
    for attempt in range(PORT_ATTEMPTS):
        try:
            return start()
        except PortTaken:
            if attempt == PORT_ATTEMPTS - 1:
                raise
            before_retry()
    raise AssertionError("unreachable")


def _log_size(log: Path) -> int:
    """Where this launch's lines start in an appended log."""
    try:
        return log.stat().st_size
    except OSError:
        return 0


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, what: str, log: Path | None = None, since: int = 0) -> None:
    """Until ``proc`` itself listens on ``port``; a ServerError with the tail of its log (from ``since``) when it exits first
    (:class:`PortTaken` when it lost its port to another process)."""
    try:
        processes.wait_for_listener(proc.pid, port, timeout, what, exited=processes.exited(proc))
    except processes.NotReady as exc:
        if not exc.exited:
            raise ServerError(str(exc)) from None
        tail = log.read_bytes()[since:].decode(errors="replace")[-2000:] if log and log.exists() else ""
        error = PortTaken if "Address already in use" in tail else ServerError
        raise error(f"{what} exited with code {proc.returncode}: {tail}") from None


def _redis_conf_quote(value: str) -> str:
    escaped = "".join(f"\\x{b:02x}" if (b < 0x20 or b > 0x7E or b in (0x22, 0x5C)) else chr(b) for b in value.encode("utf-8"))
    return f'"{escaped}"'


@dataclass
class RedisServer:
    """A throwaway ``redis-server`` with ``requirepass`` on a free loopback port."""

    password: str
    port: int = 0
    workdir: Path | None = None
    proc: subprocess.Popen | None = None
    appendonly: bool = False  # the reference stack persists queued messages, as the runbook's Coolify Redis does

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@{LOOPBACK}:{self.port}/0"

    def url_for_db(self, db: int) -> str:
        return f"redis://:{quote(self.password, safe='')}@{LOOPBACK}:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start on ``port``, or on a free port: then a port lost to another process between probe and bind is retried on a new one."""
        if self.port:
            return self._start(timeout)

        def on_a_free_port() -> "RedisServer":
            self.port = free_port()
            return self._start(timeout)

        return retrying_lost_ports(on_a_free_port)

    def _start(self, timeout: float) -> "RedisServer":
        from pmsops import safefile

        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pmsops-redis-"))
        safefile.private_subdirectory(self.workdir)
        conf = self.workdir / "redis.conf"
        log = self.workdir / "redis.log"
        safefile.write_text(  # paths quoted too: a newline in a directory name must not add a directive
            conf,
            f"port {self.port}\nbind {LOOPBACK}\nrequirepass {_redis_conf_quote(self.password)}\n"
            f'save ""\nappendonly {"yes" if self.appendonly else "no"}\nappendfsync everysec\n'
            f"dir {_redis_conf_quote(str(self.workdir))}\nlogfile {_redis_conf_quote(str(log))}\n",
            "redis.conf",
        )
        os.close(safefile.open_append(log))  # 0600 before redis-server opens it
        since = _log_size(log)
        self.proc = _start_redis(conf, self.workdir)
        _wait_port(self.port, timeout, self.proc, "redis-server", log, since)
        return self

    def stop(self) -> None:
        if self.proc:
            processes.stop(self.proc, grace=5)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _start_redis(conf: Path, workdir: Path) -> subprocess.Popen:
    return processes.spawn([find_binary("redis-server"), str(conf)], cwd=workdir, stderr=subprocess.DEVNULL)


def _service_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


def traversable_by_service_user(path: Path) -> bool:
    """Can PostgreSQL's user reach ``path`` (every ancestor searchable by others)?"""
    if _service_user() is None:
        return True
    for parent in Path(path).resolve().parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return False
    return True


def _demote(user: pwd.struct_passwd | None):
    if user is None:
        return None

    def switch() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    return switch


@dataclass
class PostgresCluster:
    """A private PostgreSQL cluster: ``initdb`` into a temp dir, scram-sha-256 over TCP."""

    user: str = "pmsops"
    password: str = "pg-pass"
    database: str = "pmsops"
    port: int = 0
    basedir: Path | None = None
    proc: subprocess.Popen | None = None
    _superpass: str = field(default="", repr=False)

    @property
    def datadir(self) -> Path:
        assert self.basedir is not None
        return self.basedir / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{LOOPBACK}:{self.port}/{quote(self.database, safe='')}"

    @property
    def superuser_url(self) -> str:
        return f"postgresql://postgres:{quote(self._superpass, safe='')}@{LOOPBACK}:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> "PostgresCluster":
        import secrets

        from pmsops import safefile

        chosen = not self.port  # our own free port: a lost race for it is retried on a new one
        self.port = self.port or free_port()
        if self.basedir is None:
            self.basedir = Path(tempfile.mkdtemp(prefix="pmsops-pg-"))
        safefile.private_subdirectory(self.basedir)
        self._superpass = secrets.token_urlsafe(18)
        owner = _service_user()
        pwfile = safefile.write_text(self.basedir / "pwfile", self._superpass + "\n", "password file")
        if owner:
            for path in (self.basedir, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        done = subprocess.run(
            [
                find_binary("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=_demote(owner),
            env=env,
            cwd=str(self.basedir),
            umask=processes.CHILD_UMASK,
        )
        if done.returncode != 0:
            raise ServerError(f"initdb failed: {done.stderr.decode(errors='replace').strip()[-500:]}")
        pwfile.unlink()
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._launch(owner, env, timeout)
                break
            except PortTaken:
                if not chosen or attempt == PORT_ATTEMPTS - 1:
                    raise
                self._log.close()
                self.port = free_port()
        self._create_role()
        return self

    def _launch(self, owner, env, timeout: float) -> None:
        from pmsops import safefile

        log = self.basedir / "postgres.log"
        self._log = os.fdopen(safefile.open_append(log, owner.pw_uid if owner else None), "ab")
        since = _log_size(log)
        self.proc = processes.spawn(
            [
                find_binary("postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                f"unix_socket_directories={self.basedir}",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
            ],
            cwd=self.basedir,
            env=env,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_demote(owner),
        )
        _wait_port(self.port, timeout, self.proc, "postgres", log, since)
        self._owner, self._env = owner, env

    def _create_role(self) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            for _ in range(50):
                try:
                    conn = await asyncpg.connect(self.superuser_url, timeout=5)
                    break
                except (asyncpg.CannotConnectNowError, ConnectionError, OSError):
                    await asyncio.sleep(0.1)
            else:
                raise ServerError("postgres did not accept connections")
            try:
                ident = '"' + self.user.replace('"', '""') + '"'
                literal = "'" + self.password.replace("'", "''") + "'"
                await conn.execute(f"CREATE ROLE {ident} LOGIN PASSWORD {literal}")
                await conn.execute(f'CREATE DATABASE "{self.database}" OWNER {ident}')
            finally:
                await conn.close()

        asyncio.run(create())

    def stop_server(self) -> None:
        """Stop the server but keep the data (to test "database down" and restart)."""
        if self.proc:
            processes.stop(self.proc, signal.SIGINT, grace=15)  # SIGINT: PostgreSQL's fast shutdown

    def restart_server(self, timeout: float = 30.0) -> None:
        self.stop_server()
        self._launch(self._owner, self._env, timeout)

    def stop(self) -> None:
        self.stop_server()
        if getattr(self, "_log", None):
            self._log.close()
        if self.basedir:
            shutil.rmtree(self.basedir, ignore_errors=True)


def relaunch_postgres(basedir: Path, port: int, timeout: float = 30.0) -> int:
    """Start an existing cluster again (the sandbox's ``start db``); returns the postmaster pid."""
    cluster = PostgresCluster(port=port, basedir=Path(basedir))
    cluster._launch(_service_user(), {**os.environ, "LC_ALL": "C", "LANG": "C"}, timeout)
    return cluster.proc.pid


def relaunch_redis(workdir: Path, port: int, timeout: float = 10.0) -> int:
    """Start an existing redis-server configuration again; returns its pid."""
    log = Path(workdir) / "redis.log"
    since = _log_size(log)
    proc = _start_redis(Path(workdir) / "redis.conf", Path(workdir))
    _wait_port(port, timeout, proc, "redis-server", log, since)
    return proc.pid
