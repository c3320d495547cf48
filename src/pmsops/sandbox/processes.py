"""Process supervision: the one way pmsops starts, waits for and stops what it runs.

Used by ``pmsops sandbox`` (:mod:`pmsops.sandbox.stack`), the private servers
(:mod:`pmsops.sandbox.servers`), the test suite (tests/conftest.py) and the
benchmarks (bench/run.py), so a security or reliability fix has one home:

- :func:`spawn`: a child in its own session (a stop signal reaches its whole
  group), stdin closed, a 077 umask, a working directory the caller chose and
  checked (never ours by accident), and ``PYTHONSAFEPATH=1`` so any Python it
  starts (and :func:`python_argv`'s ``-P``) never imports from that directory.
- :class:`Child`: a pid plus its start time, so a pid reused after a reboot or a
  crash is never signalled (``sandbox.json`` outlives the processes it names).
- :func:`wait_until`, :func:`wait_for_port`, :func:`wait_for_listener`, :func:`wait_for_worker`: a condition
  polled until a deadline, failing at once when the child exits, never a fixed sleep.
- :func:`terminate`: the process group, a grace period, then SIGKILL.
- :class:`BlackHole` (accepts, never answers) and :class:`HttpStub` (answers what
  a test set per path): loopback stand-ins for a dependency.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Union

LOOPBACK = "127.0.0.1"
CHILD_UMASK = 0o077

Target = Union[int, IO[Any], None]


class NotReady(RuntimeError):
    """A child exited, or its condition did not hold before the deadline (``exited`` says which)."""

    def __init__(self, message: str, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


# --- starting ------------------------------------------------------------------------------------------


def python_argv(*args: str) -> list[str]:
    """``python -P ARGS``: with ``-P`` (safe path) ``-m`` does not put the working directory first on ``sys.path``."""
    return [sys.executable, "-P", *args]


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Ours, then ``env``, then PYTHONSAFEPATH=1 for any Python the child starts in turn."""
    return {**os.environ, **(env or {}), "PYTHONSAFEPATH": "1"}


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket listening on loopback ``port`` (0: a free one, chosen by the kernel), for a child to serve on.

    The port belongs to us from the bind on, so a child handed this socket (``--fd``) cannot lose its port to
    another process between "this port is free" and its own bind, as a child told ``--port N`` can. An
    explicit ``port`` (a component restarted where its URL points) that another process holds now fails here,
    at once, with EADDRINUSE."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sock.fileno() < 3:  # we run with stdin/out/err closed (cron): the child's stdio would land on top of it
            import fcntl

            low = sock.detach()  # the object gives up the low descriptor: closed here, once
            try:
                sock = socket.socket(fileno=fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 3))
            finally:
                os.close(low)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may rebind while old connections linger
        sock.bind((LOOPBACK, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket a parent handed over (``--fd``), no longer inheritable: a process this child starts
    must not keep the port bound after the child is gone."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    return sock


def spawn(
    argv: list[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    stdout: Target = subprocess.DEVNULL,
    stderr: Target = subprocess.STDOUT,
    preexec_fn: Callable[[], None] | None = None,
    text: bool = False,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Start ``argv`` safely: own session, stdin closed, umask 077, ``cwd`` (required: a directory the caller checked), PYTHONSAFEPATH=1;
    ``pass_fds``: descriptors the child inherits (a listening socket bound here, see :func:`listening_socket`)."""
    check_working_directory(cwd)
    return subprocess.Popen(
        argv,
        pass_fds=pass_fds,
        env=child_environment(env),
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(cwd),
        umask=CHILD_UMASK,
        preexec_fn=preexec_fn,
        text=text,
    )


def check_working_directory(cwd: str | os.PathLike[str]) -> None:
    """A child's working directory must be a real directory no other user can write to (nothing planted there runs)."""
    import stat

    from pmsops.errors import UsageError

    try:
        info = os.lstat(cwd)
    except OSError as exc:
        raise UsageError(f"cannot start a process in {cwd}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"refusing to start a process in {cwd}: not a directory (a link or a file)")
    if info.st_mode & 0o022:
        raise UsageError(f"refusing to start a process in {cwd}: other users can write to it (mode {stat.S_IMODE(info.st_mode):o})")


# --- identity -------------------------------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    """Does ``pid`` exist (and, if it is our child, has it not exited)?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def start_time(pid: int | None) -> str | None:
    """When ``pid`` started (clock ticks since boot, /proc/PID/stat field 22); None when unknown."""
    try:
        data = Path(f"/proc/{int(pid or 0)}/stat").read_bytes()
        return data[data.rindex(b")") + 2 :].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Child:
    """A process we started, named by pid and start time."""

    pid: int | None
    started: str | None = None

    @classmethod
    def of(cls, pid: int) -> "Child":
        return cls(pid, start_time(pid))

    def running(self) -> bool:
        """Is it still the process we started? A reused pid (after a reboot) is not ours to signal."""
        if not alive(self.pid):
            return False
        current = start_time(self.pid)
        return self.started is None or current is None or self.started == current

    def terminate(self, graceful: int = signal.SIGTERM, grace: float = 15.0) -> bool:
        """Stop it (see :func:`terminate`) when it is still ours; False when it was gone or reused (not signalled)."""
        if not self.running():
            return False
        terminate(self.pid, graceful, grace)
        return True


# --- waiting ----------------------------------------------------------------------------------------------


def wait_until(ready: Callable[[], Any], timeout: float, what: str, exited: Callable[[], bool] = lambda: False, interval: float = 0.1) -> Any:
    """Poll ``ready`` until it returns something true (returned) or ``timeout`` passes; stop at once when ``exited()``.

    Raises :class:`NotReady` with ``what`` ("worker w1 did not answer") in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        if exited():
            raise NotReady(f"{what}: the process exited", exited=True)
        value = ready()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise NotReady(f"{what} within {timeout:g} s", exited=False)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.3) -> bool:
    """Does something accept TCP connections on ``host:port``?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, what: str, exited: Callable[[], bool] = lambda: False) -> None:
    """Until ``port`` accepts a connection on loopback."""
    wait_until(lambda: port_open(port, timeout=0.2), timeout, f"{what} did not listen on port {port}", exited, interval=0.05)


def http_answers(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """Does an HTTP server answer on ``port`` (any status)? For a server on a socket its parent bound, an open
    port says nothing: the kernel accepts connections into the backlog before the child serves."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_for_http(port: int, timeout: float, what: str, exited: Callable[[], bool] = lambda: False) -> None:
    """Until an HTTP server answers on loopback ``port``."""
    wait_until(lambda: http_answers(port), timeout, f"{what} did not answer HTTP on port {port}", exited, interval=0.05)


def listens(pid: int, port: int) -> bool:
    """Does process ``pid`` itself hold the socket listening on loopback ``port``?

    Not just "something answers": a server that lost a race for its port exits, while another
    process (a parallel test worker's server) answers there. Read from /proc; where that cannot be
    read (another system, another user's process) an open port is taken as the answer.
    """
    wanted = f"{socket.inet_aton(LOOPBACK)[::-1].hex().upper()}:{port:04X}"
    try:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:  # no /proc here
        return port_open(port, timeout=0.2)
    sockets = {f"socket:[{cols[9]}]" for cols in rows if cols[1] == wanted and cols[3] == "0A"}  # 0A: LISTEN
    if not sockets:
        return False
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except PermissionError:
        return port_open(port, timeout=0.2)
    except OSError:  # it has exited
        return False
    for fd in descriptors:
        try:
            if os.readlink(fd) in sockets:
                return True
        except OSError:
            continue
    return False


def wait_for_listener(pid: int, port: int, timeout: float, what: str, exited: Callable[[], bool] = lambda: False) -> None:
    """Until process ``pid`` listens on loopback ``port`` (see :func:`listens`)."""
    wait_until(lambda: listens(pid, port), timeout, f"{what} did not listen on port {port}", exited, interval=0.05)


def wait_for_worker(broker_url: str, name: str, timeout: float, exited: Callable[[], bool] = lambda: False) -> None:
    """Until the Celery worker ``name`` answers a ping on ``broker_url`` (each ping bounded by 1 s)."""
    from pmsops.checks.celery import ping

    wait_until(lambda: ping(broker_url, 1.0, destination=[name]).status == "ok", timeout, f"worker {name} did not answer", exited, interval=0.2)


def exited(proc: subprocess.Popen) -> Callable[[], bool]:
    """For ``exited=``: has this child of ours ended?"""
    return lambda: proc.poll() is not None


# --- stopping -----------------------------------------------------------------------------------------------


def terminate(pid: int, graceful: int = signal.SIGTERM, grace: float = 15.0) -> None:
    """Signal the process group (the child and its children), wait up to ``grace`` seconds, then SIGKILL the group."""
    if not alive(pid):
        return
    try:
        os.killpg(pid, graceful)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, graceful)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen, graceful: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop a child started by :func:`spawn` (its whole session) and reap it."""
    if proc.poll() is None:
        terminate(proc.pid, graceful, grace)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- loopback stand-ins --------------------------------------------------------------------------------------


class BlackHole:
    """A TCP listener on loopback that accepts connections and never answers (a black-holed dependency)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def accepted(self) -> int:
        """How many connections it has taken (and holds unanswered): a test waits on this, not on a clock."""
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self._held.append(self._sock.accept()[0])
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        for conn in self._held:
            conn.close()
        self._sock.close()


NOT_FOUND = (404, {"content-type": "application/json"}, b'{"detail":"Not Found"}')


class HttpStub:
    """A real HTTP server on loopback whose answers are set per path (404 JSON otherwise); it records every request."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub = self
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.queued: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.delays: dict[str, float] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append((self.command, self.path, dict(self.headers), body))
                path = self.path.split("?")[0]
                if stub.delays.get(path):
                    time.sleep(stub.delays[path])  # the server's own slowness (a readiness check that waits)
                queued = stub.queued.get(path)
                status, headers, payload = queued.pop(0) if queued else stub.routes.get(path, NOT_FOUND)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:  # keep output clean
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def json(self, path: str, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        import json as _json

        self.routes[path] = (status, {"content-type": "application/json", **(headers or {})}, _json.dumps(payload).encode())

    def raw(self, path: str, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.routes[path] = (status, headers or {}, body)

    def first(self, path: str, payload: Any, status: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next request to ``path`` so (a 429, a redirect), then as the route says."""
        import json as _json

        self.queued.setdefault(path, []).append((status, {"content-type": "application/json", **(headers or {})}, _json.dumps(payload).encode()))

    def delay(self, path: str, seconds: float) -> None:
        """Take ``seconds`` before answering ``path``, as a backend busy with its own checks does."""
        self.delays[path] = seconds

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
