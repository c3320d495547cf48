"""Production variants of the real servers, started by the tests: TLS, ACL users, Unix sockets, SSL, PgBouncer.

Certificates are made here with ``cryptography`` (a CA and a server certificate for
127.0.0.1/localhost); nothing leaves loopback. Every server runs in its own temp
directory and is stopped by its fixture.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from pmsops.sandbox import processes
from pmsops.sandbox.processes import LOOPBACK, listens
from pmsops.sandbox.servers import PortTaken, ServerError, find_binary, free_port, retrying_lost_ports


# --- certificates -------------------------------------------------------------------------------------


from pmsops.sandbox.tls import Certificates, make_certificates  # noqa: E402,F401 - the one generator (the proxy's too)


# --- waiting ------------------------------------------------------------------------------------------


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """:func:`pmsops.sandbox.processes.wait_until`, with the server log's tail in the error (what a failing fixture needs);
    :class:`PortTaken` when the server exited because another process had taken its port."""
    try:
        processes.wait_until(condition, timeout, what, processes.exited(proc) if proc is not None else (lambda: False), interval=0.05)
    except processes.NotReady as exc:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise (PortTaken if exc.exited and "Address already in use" in tail else ServerError)(f"{exc}: {tail}") from None


def on_free_ports(server, timeout: float):
    """``server._start(timeout)`` on free ports (:func:`pmsops.sandbox.servers.retrying_lost_ports`: a port another
    process took between :func:`free_port` and the server's bind is retried on a new one); a start that fails for
    good leaves no server process or directory behind."""
    try:
        return retrying_lost_ports(lambda: server._start(timeout), before_retry=server.stop)
    except BaseException:
        server.stop()
        raise


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        processes.stop(proc, grace=5.0)


# --- Redis variants ----------------------------------------------------------------------------------


@dataclass
class VariantRedis:
    """A redis-server with extra configuration lines: TLS, ACL users, a Unix socket.

    ``tls`` adds a TLS port (no client certificates required) next to a plain port;
    ``socket`` adds a Unix socket in the server's directory; ``acl`` lines are
    written as ``user`` directives (passwords as ``#<sha256>``, never in clear).
    """

    password: str | None = None
    tls: bool = False
    socket: bool = False
    acl: list[str] = field(default_factory=list)
    port: int = 0
    tls_port: int = 0
    workdir: Path | None = None
    certs: Certificates | None = None
    proc: subprocess.Popen | None = None

    @property
    def socket_path(self) -> str:
        assert self.workdir is not None
        return str(self.workdir / "redis.sock")

    def auth(self, user: str | None = None, password: str | None = None) -> str:
        password = self.password if password is None else password
        if password is None:
            return ""
        return f"{quote(user, safe='') if user else ''}:{quote(password, safe='')}@"

    def url(self, db: int = 0, user: str | None = None, password: str | None = None) -> str:
        return f"redis://{self.auth(user, password)}{LOOPBACK}:{self.port}/{db}"

    def tls_url(self, query: str = "", db: int = 0, user: str | None = None, password: str | None = None) -> str:
        return f"rediss://{self.auth(user, password)}{LOOPBACK}:{self.tls_port}/{db}" + (f"?{query}" if query else "")

    def start(self, timeout: float = 10.0) -> "VariantRedis":
        return on_free_ports(self, timeout)

    def _start(self, timeout: float) -> "VariantRedis":
        self.workdir = Path(tempfile.mkdtemp(prefix="pmsops-vredis-"))
        self.port = free_port()
        lines = [f"port {self.port}", f"bind {LOOPBACK}", 'save ""', "appendonly no", f"dir {self.workdir}", f"logfile {self.workdir / 'redis.log'}"]
        if self.password is not None:
            lines.append(f"requirepass {_conf_quote(self.password)}")
        if self.tls:
            self.certs = make_certificates(self.workdir / "tls")
            self.tls_port = free_port()
            lines += [
                f"tls-port {self.tls_port}",
                f"tls-cert-file {self.certs.cert}",
                f"tls-key-file {self.certs.key}",
                f"tls-ca-cert-file {self.certs.ca}",
                "tls-auth-clients no",
            ]
        if self.socket:
            lines += [f"unixsocket {self.socket_path}", "unixsocketperm 700"]
        lines += [f"user {line}" for line in self.acl]
        conf = self.workdir / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        log = self.workdir / "redis.log"
        self.proc = processes.spawn([find_binary("redis-server"), str(conf)], cwd=self.workdir, stderr=subprocess.DEVNULL)
        pid = self.proc.pid  # itself listening: an open port could be another process's (a parallel worker's server)
        wait_until(
            lambda: (
                listens(pid, self.port) and (not self.tls or listens(pid, self.tls_port)) and (not self.socket or os.path.exists(self.socket_path))
            ),
            timeout,
            "redis-server",
            self.proc,
            log,
        )
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def acl_password(password: str) -> str:
    """An ACL rule setting ``password`` by its SHA-256 (no clear text in the configuration file)."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def _conf_quote(value: str) -> str:
    escaped = "".join(f"\\x{b:02x}" if (b < 0x20 or b > 0x7E or b in (0x22, 0x5C)) else chr(b) for b in value.encode("utf-8"))
    return f'"{escaped}"'


# --- PostgreSQL with SSL ------------------------------------------------------------------------------


def ssl_postgres(cluster, hostssl_only: bool = True):
    """Turn SSL on in a started :class:`~pmsops.sandbox.servers.PostgresCluster` and restart it.

    The certificates are made here (a private CA); with ``hostssl_only`` pg_hba.conf
    accepts TCP connections over SSL only (``hostssl``), as managed databases do.
    Returns the :class:`Certificates` (``ca`` is the root certificate a client needs).
    """
    owner = cluster._owner
    certs = make_certificates(cluster.basedir / "tls", owner.pw_uid if owner else None, owner.pw_gid if owner else None)
    (cluster.basedir / "tls").chmod(0o755)
    conf = cluster.datadir / "postgresql.conf"
    with conf.open("a") as handle:
        handle.write(f"\nssl = on\nssl_cert_file = '{certs.cert}'\nssl_key_file = '{certs.key}'\nssl_ca_file = '{certs.ca}'\n")
    if hostssl_only:
        hba = cluster.datadir / "pg_hba.conf"
        hba.write_text("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n")
        if owner:
            os.chown(hba, owner.pw_uid, owner.pw_gid)
    cluster.restart_server()
    return certs


# --- PgBouncer ---------------------------------------------------------------------------------------


@dataclass
class PgBouncer:
    """A ``pgbouncer`` in transaction mode in front of a PostgreSQL cluster, with a userlist written here.

    PgBouncer refuses to run as root: then it runs as PostgreSQL's service user. The
    userlist holds the password (0600, readable by that user only); clients
    authenticate with SCRAM, and PgBouncer logs in to PostgreSQL with the same secret.
    """

    server_port: int
    database: str
    user: str
    password: str
    pool_mode: str = "transaction"
    pool_size: int = 4
    port: int = 0
    workdir: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{LOOPBACK}:{self.port}/{quote(self.database, safe='')}"

    def start(self, timeout: float = 10.0) -> "PgBouncer":
        return on_free_ports(self, timeout)

    def _start(self, timeout: float) -> "PgBouncer":
        import pwd

        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.access(binary, os.X_OK):
            raise ServerError("pgbouncer not found: apt-get install -y pgbouncer (make setup installs it)")
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="pmsops-pgbouncer-"))
        owner = None
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres") if _has_user("postgres") else pwd.getpwnam("nobody")
        quoted = lambda text: '"' + text.replace('"', '""') + '"'  # noqa: E731 - PgBouncer's userlist quoting
        userlist = self.workdir / "userlist.txt"
        userlist.write_text(f"{quoted(self.user)} {quoted(self.password)}\n")
        ini = self.workdir / "pgbouncer.ini"
        log = self.workdir / "pgbouncer.log"
        ini.write_text(
            f"[databases]\n{self.database} = host={LOOPBACK} port={self.server_port} dbname={self.database}\n\n"
            f"[pgbouncer]\nlisten_addr = {LOOPBACK}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {userlist}\npool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\nmin_pool_size = 0\nmax_client_conn = 200\nserver_lifetime = 3600\n"
            f"logfile = {log}\npidfile = {self.workdir / 'pgbouncer.pid'}\nignore_startup_parameters = extra_float_digits\n"
        )
        for path in (self.workdir, userlist, ini):
            path.chmod(0o700 if path.is_dir() else 0o600)
            if owner:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        demote = None
        if owner:

            def demote() -> None:
                os.setgid(owner.pw_gid)
                os.setgroups([])
                os.setuid(owner.pw_uid)

        self.proc = processes.spawn([binary, str(ini)], cwd=self.workdir, stderr=subprocess.DEVNULL, preexec_fn=demote)
        pid = self.proc.pid
        wait_until(lambda: listens(pid, self.port), timeout, "pgbouncer", self.proc, log)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
