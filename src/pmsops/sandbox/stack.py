"""``sandbox up|status|down|stop|start``: the reference stack on free loopback ports.

``up`` starts, in order: redis-server (generated requirepass full of special
characters), a private PostgreSQL cluster (or ``--database-url``), migrations and
seed data, the fake platform, a Celery worker through ``pmsops worker-start``, and
the API (uvicorn). It writes an env file (``export …`` lines, URL-encoded
passwords) for ``--env-file``, and a state file naming every process it started
and every file it created, so ``down`` stops exactly those and removes exactly those.

Security (pmsops often runs as root; the default directory is predictable): the
directory is created 0700, or an existing one is used only when it is a real
directory owned by us that no one else can write (else exit 2). Every file in it
is 0600 and written without following links (:mod:`pmsops.safefile`). Python
children run with ``-P`` and ``PYTHONSAFEPATH=1``, a 077 umask, and that verified
directory as their working directory, so nothing another user planted can be
imported.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pmsops import results, safefile
from pmsops.errors import OperationError, UsageError
from pmsops.results import Result
from pmsops.sandbox import processes
from pmsops.sandbox.processes import python_argv
from pmsops.sandbox.state import Component, SandboxState

STATE_FILE = "sandbox.json"
ENV_FILE = "sandbox.env"
MAX_STATE_BYTES = 1024 * 1024
COMPONENTS = ("redis", "db", "platform", "worker", "api", "proxy")
USERS = ("ops@kolibri.test", "ops@alpen.test")


def default_directory() -> Path:
    base = os.environ.get("PMSOPS_SANDBOX_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"pmsops-sandbox-{os.getuid()}"


def special_password(length: int = 12) -> str:
    """Random, plus every character the runbook warns about and a non-ASCII letter."""
    return secrets.token_urlsafe(length) + "+=@:/?#&%ü"


def _shell_export(env: dict[str, str]) -> str:
    import shlex

    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


@dataclass
class Sandbox:
    directory: Path

    @classmethod
    def at(cls, directory: str | os.PathLike[str] | None = None) -> "Sandbox":
        """The sandbox at ``directory``: its parent resolved once (links in it cannot be re-pointed later), the last part kept as given."""
        path = os.path.abspath(directory if directory else default_directory())
        return cls(Path(os.path.realpath(os.path.dirname(path))) / os.path.basename(path))

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def env_path(self) -> Path:
        return self.directory / ENV_FILE

    def load(self) -> SandboxState:
        """The state file, only from a directory that is ours (another user's would choose the pids we kill and the argv we run)."""
        if not os.path.lexists(self.directory):
            raise UsageError(f"no sandbox at {self.directory}", hint="start one: pmsops sandbox up")
        safefile.check_private_directory(self.directory)
        state = self._read_state()
        if state is None:
            raise UsageError(f"no sandbox at {self.directory}", hint="start one: pmsops sandbox up")
        return state

    def _read_state(self) -> SandboxState | None:
        """The state file of a checked directory, or None; it must be a regular file of ours."""
        try:
            info = os.lstat(self.state_path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise UsageError(f"unsafe sandbox state {self.state_path}: it is {safefile.kind(info.st_mode)} of uid {info.st_uid}")
        try:
            data = json.loads(safefile.read_regular(self.state_path, MAX_STATE_BYTES, "sandbox state"))
        except ValueError:
            raise UsageError(f"sandbox state {self.state_path} is not valid JSON", hint="remove the directory by hand") from None
        if not isinstance(data, dict):
            raise UsageError(f"sandbox state {self.state_path} is not a JSON object", hint="remove the directory by hand")
        return SandboxState.from_json(data, self.state_path)

    def save(self, state: SandboxState) -> None:
        safefile.write_text(self.state_path, json.dumps(state.to_json(), indent=2), "sandbox state")

    def _create(self, state: SandboxState, name: str) -> Path:
        """Note ``name`` (in the directory) as ours before creating it, so ``down`` removes it even after a crash."""
        path = self.directory / name
        if name not in state.created:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                info = None
            if info is not None:  # not left by an earlier sandbox (those were removed): never reuse or remove it
                raise UsageError(
                    f"{path} already exists and was not created by sandbox up (it is {safefile.kind(info.st_mode)})",
                    hint="remove it, or pass another --dir",
                )
            state.created.append(name)
            self.save(state)
        return path

    def env(self) -> dict[str, str]:
        return dict(self.load().env)

    # --- up ------------------------------------------------------------------------------------------
    def up(
        self,
        database_url: str | None = None,
        progress: Callable[[str], None] = lambda _: None,
        timeout: float = 60.0,
        proxy: str | None = None,
        overrides: dict[str, str] | None = None,
    ) -> SandboxState:
        """Start the stack; ``proxy`` (:data:`pmsops.sandbox.proxy.VARIANTS`) puts a real nginx in front of the API;
        ``overrides`` are written into its environment (READY_CACHE_SECONDS, READY_DELAY_SECONDS: the API's switches)."""
        created_directory = safefile.private_directory(self.directory)
        old = self._read_state()
        if old is not None:
            if old.running():
                raise UsageError(f"a sandbox is already running at {self.directory}", hint="pmsops sandbox status, or pmsops sandbox down")
            created_directory = created_directory or old.created_directory
            left = self._remove_created(old)
            if left:
                raise OperationError(
                    f"could not remove what the last sandbox left in {self.directory}: {', '.join(left[:5])}", hint="remove them by hand"
                )
        state = SandboxState(str(self.directory), created_directory, created=[STATE_FILE], external_db=bool(database_url))
        self.save(state)
        try:
            self._up(state, database_url, progress, timeout, (proxy, overrides or {}))
        except BaseException:
            progress("start-up failed: stopping what was started")
            self.down()
            raise
        return state

    def _up(self, state: SandboxState, database_url: str | None, progress: Callable[[str], None], timeout: float, variant: tuple) -> None:
        """``variant``: (proxy, overrides) as :meth:`up` takes them."""
        from pmsops.sandbox.servers import PostgresCluster, RedisServer

        redis_password = special_password()
        redis = RedisServer(redis_password, workdir=self._create(state, "redis"), appendonly=True).start()
        state.components["redis"] = Component.launched(redis.proc.pid, port=redis.port, workdir=str(redis.workdir))
        self.save(state)
        progress(f"redis-server on 127.0.0.1:{redis.port} (requirepass with special characters)")
        if database_url:
            db_url = database_url
            progress("database: using --database-url")
        else:
            from pmsops.sandbox.servers import traversable_by_service_user

            # PostgreSQL runs as its own user when we are root: it cannot enter our 0700 directory, so then it gets a mkdtemp one
            if traversable_by_service_user(self.directory / "pg"):
                basedir = self._create(state, "pg")
            else:  # noted before start so that down removes it even if initdb fails
                basedir = Path(tempfile.mkdtemp(prefix="pmsops-pg-"))
                state.components["db"] = Component(basedir=str(basedir))
                self.save(state)
            cluster = PostgresCluster(user="pms_app", password=special_password(), database="pms", basedir=basedir).start()
            state.components["db"] = Component.launched(cluster.proc.pid, port=cluster.port, basedir=str(cluster.basedir))
            self.save(state)
            db_url = cluster.url
            progress(f"PostgreSQL on 127.0.0.1:{cluster.port} (private cluster, scram-sha-256)")
        # bound here and handed to the children (--fd): no other process can take these ports before they serve
        with contextlib.ExitStack() as ours:
            platform_sock = ours.enter_context(processes.listening_socket())
            api_sock = ours.enter_context(processes.listening_socket())
            self._up_services(state, db_url, redis, platform_sock, api_sock, progress, timeout, variant)

    def _up_services(
        self, state: SandboxState, db_url: str, redis, platform_sock, api_sock, progress: Callable[[str], None], timeout: float, variant: tuple
    ) -> None:
        """The env file, the schema and seed, then the fake platform, the worker and the API on their sockets."""
        platform_port, api_port = platform_sock.getsockname()[1], api_sock.getsockname()[1]
        api_url = f"http://127.0.0.1:{api_port}"
        env, users = _stack_env(api_url, redis.url, db_url, platform_port)
        proxy, overrides = variant
        env.update(overrides)
        plan = None
        if proxy:
            from pmsops.sandbox.proxy import prepare

            plan = prepare(self._create(state, "proxy"), proxy, api_port)
            env.update(PMS_API_URL=plan.api_url, SSL_CERT_FILE=str(plan.ca_file))  # GoTrue (SB_URL) stays direct, as in Supabase
        state.env = env
        state.users = {USERS[1]: users[USERS[1]]}
        self._create(state, ENV_FILE)
        header = f"# pmsops sandbox: load with  pmsops --env-file {self.env_path} …\n"
        safefile.write_text(self.env_path, header + _shell_export(env), "sandbox env file")
        self.save(state)
        state.seed = self._migrate_and_seed(db_url, env["ENCRYPTION_KEY"], users)
        self.save(state)
        progress(f"schema migrated; seeded 2 agencies, 3 properties, {len(state.seed['connections'])} connections, 2 users")
        self._spawn(state, "platform", python_argv("-m", "pmsops.sandbox.fake_platform"), env, platform_port, sock=platform_sock)
        self._wait_served(state, "platform", platform_port, timeout)
        self._load_reservations(env["PLATFORM_BASE_URL"], state.seed)
        progress(f"fake platform on 127.0.0.1:{platform_port}")
        self._spawn(state, "worker", self._worker_argv(), env)
        self._spawn(state, "api", python_argv("-m", "pmsops.sandbox.api", "--log-level", "warning"), env, api_port, sock=api_sock)
        self._wait_served(state, "api", api_port, timeout)
        progress(f"API on {api_url}")
        if plan is not None:
            self._up_proxy(state, plan, env, progress, timeout)
        self._wait_worker(state, timeout)
        progress(f"Celery worker {self.worker_name} answers (started by pmsops worker-start)")
        progress(f"env file: {self.env_path}")

    def _up_proxy(self, state: SandboxState, plan, env: dict[str, str], progress: Callable[[str], None], timeout: float) -> None:
        from pmsops.sandbox.proxy import nginx_argv

        self._spawn(state, "proxy", nginx_argv(plan), env)
        self._wait(
            "proxy",
            state.components["proxy"],
            f"did not answer on {plan.http_port} within {timeout:g} s",
            lambda gone: processes.wait_for_http(plan.http_port, timeout, "sandbox proxy", exited=gone),
        )
        progress(f"nginx ({plan.variant}) in front of the API: PMS_API_URL={plan.api_url}, CA {plan.ca_file} (SSL_CERT_FILE)")

    @property
    def worker_name(self) -> str:
        return f"sandbox@{socket.gethostname()}"

    def _worker_argv(self) -> list[str]:
        argv = python_argv("-m", "pmsops", "worker-start", "--hostname", self.worker_name)
        return argv + (["--allow-root"] if os.geteuid() == 0 else [])

    def _migrate_and_seed(self, db_url: str, key: str, users: dict[str, str]) -> dict[str, Any]:
        from pmsops.sandbox.seed import apply_sandbox_schema, seed
        from pmsops.sync.maintenance import with_connection
        from pmsops.sync.migrate import migrate

        async def go(conn):
            await migrate(conn)
            await apply_sandbox_schema(conn)
            return await seed(conn, key, users)

        return with_connection(db_url, go, timeout=30)

    def _load_reservations(self, platform_url: str, seeded: dict[str, Any]) -> None:
        import httpx

        from pmsops.sandbox.seed import demo_reservations

        listing = seeded["listings"]["airbnb"]
        body = {"listing": listing, "reservations": demo_reservations()}
        httpx.post(f"{platform_url}/_control/reservations", json=body, timeout=5).raise_for_status()

    def _spawn(self, state: SandboxState, name: str, argv: list[str], env: dict[str, str], port: int | None = None, sock=None) -> None:
        """Start a child: log 0600 (never through a link), umask 077, cwd = our checked 0700 directory, PYTHONSAFEPATH=1.
        ``sock``: a listening socket the child serves on (``--fd``); ``argv`` is recorded without it, for a restart."""
        log = self._create(state, f"{name}.log")
        fd = safefile.open_append(log)
        run, inherit = (argv + ["--fd", str(sock.fileno())], (sock.fileno(),)) if sock is not None else (argv, ())
        try:
            proc = processes.spawn(run, cwd=self.directory, env=env, stdout=fd, pass_fds=inherit)
        finally:
            os.close(fd)
        state.components[name] = Component.launched(proc.pid, port=port, argv=argv, log=str(log))
        self.save(state)

    def _wait_served(self, state: SandboxState, name: str, port: int, timeout: float) -> None:
        self._wait(
            name,
            state.components[name],
            f"did not answer on {port} within {timeout:g} s",
            lambda gone: processes.wait_for_http(port, timeout, f"sandbox {name}", exited=gone),
        )

    def _wait_worker(self, state: SandboxState, timeout: float) -> None:
        self._wait(
            "worker",
            state.components["worker"],
            f"did not answer within {timeout:g} s",
            lambda gone: processes.wait_for_worker(state.env["CELERY_BROKER_URL"], self.worker_name, timeout, exited=gone),
        )

    @staticmethod
    def _wait(name: str, comp: Component, failed: str, wait: Callable[[Callable[[], bool]], None]) -> None:
        """Run a wait of :mod:`processes` that stops when the component exits; a failure names the component's log."""
        try:
            wait(lambda: not processes.alive(comp.pid))
        except processes.NotReady as exc:
            said = "exited during start-up" if exc.exited else failed
            raise OperationError(f"sandbox {name} {said}: see {comp.log}") from None

    # --- status, stop, start, down ---------------------------------------------------------------------
    def status(self) -> list[Result]:
        state = self.load()
        out = []
        for name in COMPONENTS:
            comp = state.components.get(name)
            if comp is None:
                out.append(results.skip(name, "external (--database-url)" if name == "db" and state.external_db else "not started"))
                continue
            where = f" on 127.0.0.1:{comp.port}" if comp.port else ""
            if comp.running():
                out.append(results.ok(name, f"running (pid {comp.pid}){where}"))
            else:
                hint = f"pmsops sandbox start {name}" + (f"; log: {comp.log}" if comp.log else "")
                out.append(results.fail(name, f"not running (pid {comp.pid} gone){where}", hint=hint))
        out.append(results.ok("env file", str(self.env_path), notes=[f"pmsops --env-file {self.env_path} doctor"]))
        return out

    def stop(self, name: str) -> Result:
        """Stop one component (to rehearse an outage)."""
        state = self.load()
        comp = self._component(state, name)
        comp.child.terminate(_stop_signal(name))
        return results.ok(name, f"stopped (pid {comp.pid})")

    def start(self, name: str, timeout: float = 30.0) -> Result:
        """Start a stopped component again, on the same port."""
        from pmsops.sandbox.servers import relaunch_postgres, relaunch_redis

        state = self.load()
        comp = self._component(state, name)
        if comp.running():
            return results.ok(name, f"already running (pid {comp.pid})")
        how = {"db": comp.basedir, "redis": comp.workdir}.get(name, comp.argv)
        if not how or (name in ("db", "redis") and not comp.port):
            raise UsageError(f"cannot start {name}: {self.state_path} does not say how it was started", hint="pmsops sandbox down; pmsops sandbox up")
        if name == "db":
            comp.relaunched(relaunch_postgres(Path(comp.basedir), comp.port, timeout))
        elif name == "redis":
            comp.relaunched(relaunch_redis(Path(comp.workdir), comp.port, timeout))
        else:
            self._respawn(state, name, comp)
            comp = state.components[name]
            if comp.port:
                self._wait_served(state, name, comp.port, timeout)
            if name == "worker":
                self._wait_worker(state, timeout)
        self.save(state)
        return results.ok(name, f"started (pid {comp.pid})")

    def _respawn(self, state: SandboxState, name: str, comp: Component) -> None:
        """A stopped Python child again, with its recorded argv; a server again on its port (its URL is in the env file),
        bound here first: a port another process took meanwhile is a clear error, not a child that exits."""
        if not comp.port or "--port" in comp.argv:  # the worker; or a server recorded by an older pmsops (binds itself)
            self._spawn(state, name, comp.argv, state.env, comp.port)
            return
        try:
            sock = processes.listening_socket(comp.port)
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            raise OperationError(
                f"cannot start {name}: port {comp.port} is " + ("taken by another process" if taken else "not ours to bind") + f" ({exc.strerror})",
                hint="pmsops sandbox down; pmsops sandbox up (new ports)",
            ) from None
        with sock:
            self._spawn(state, name, comp.argv, state.env, comp.port, sock=sock)

    def _component(self, state: SandboxState, name: str) -> Component:
        if name not in COMPONENTS:
            raise UsageError(f"unknown component {name!r}: one of {', '.join(COMPONENTS)}")
        comp = state.components.get(name)
        if comp is None:
            raise UsageError(f"{name} is not part of this sandbox")
        return comp

    def down(self) -> list[Result]:
        """Stop exactly what ``up`` started (newest first) and remove exactly what it created; say what is left."""
        if not os.path.lexists(self.directory):
            return [results.ok("sandbox", f"nothing running at {self.directory}")]
        safefile.check_private_directory(self.directory)
        state = self._read_state()
        if state is None:
            return [results.ok("sandbox", f"nothing running at {self.directory} (no {STATE_FILE}; nothing removed)")]
        out = []
        for name in reversed(COMPONENTS):
            comp = state.components.get(name)
            if comp is None:
                continue
            if comp.pid is None:
                out.append(results.ok(name, "not started"))
            elif comp.child.terminate(_stop_signal(name)):
                out.append(results.ok(name, f"stopped (pid {comp.pid})"))
            else:
                out.append(results.ok(name, f"not running (pid {comp.pid} gone or reused: not signalled)"))
        left = self._remove_created(state)
        if left:
            out.append(results.fail("sandbox", f"could not remove {len(left)} path(s): {', '.join(left[:5])}", hint="remove them by hand"))
        elif state.created_directory:
            try:
                os.rmdir(self.directory)
                out.append(results.ok("sandbox", f"removed {self.directory}"))
            except OSError:
                names = sorted(os.listdir(self.directory))
                entries = f"{len(names)} entr{'y' if len(names) == 1 else 'ies'} not ours ({', '.join(names[:5])})"
                out.append(results.warn("sandbox", f"removed what sandbox up created; kept {self.directory}: {entries}"))
        else:
            out.append(results.ok("sandbox", f"removed what sandbox up created in {self.directory} (the directory existed before, kept)"))
        return out

    def _remove_created(self, state: SandboxState) -> list[str]:
        """Remove the entries ``up`` noted (state file last) and a private cluster outside; return what could not be removed."""
        left: list[str] = []
        db = state.components.get("db")
        basedir = db.basedir if db else None
        if basedir and Path(basedir).parent != self.directory:  # a mkdtemp cluster outside our directory (we are root)
            left += _remove_tree(Path(basedir))
        names = [n for n in state.created if n != STATE_FILE] + [STATE_FILE]
        for name in names:
            if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                left.append(repr(name))
                continue
            left += _remove_tree(self.directory / name)
        return left


def _stack_env(api_url: str, redis_url: str, db_url: str, platform_port: int) -> tuple[dict[str, str], dict[str, str]]:
    """The sandbox's environment (what its env file exports) and its users' passwords, fresh secrets each time."""
    from pmsops.sync.crypto import generate_key

    users = {USERS[0]: secrets.token_urlsafe(12), USERS[1]: secrets.token_urlsafe(12)}
    jwt_secret = secrets.token_urlsafe(32)
    env = {
        "PMS_API_URL": api_url,
        "SB_URL": api_url,
        "ANON_KEY": "sb-anon-" + secrets.token_urlsafe(24),
        "EMAIL": USERS[0],
        "PASSWORD": users[USERS[0]],
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "DATABASE_URL": db_url,
        "JWT_SECRET": jwt_secret,
        "SUPABASE_JWT_SECRET": jwt_secret,
        "JWT_AUDIENCE": "authenticated",
        "ENCRYPTION_KEY": generate_key(),
        "PLATFORM_BASE_URL": f"http://127.0.0.1:{platform_port}",
        "CHANNEL_MANAGER_ENABLED": "true",
        "MODULES_ENABLED": "true",
        "ENABLE_REDIS_HEALTHCHECK": "true",
        "ENABLE_CELERY_HEALTHCHECK": "true",
        "CELERY_POOL": "threads",
        "CELERY_CONCURRENCY": "4",
        "CELERY_LOGLEVEL": "INFO",
        "CELERY_TIME_LIMIT": "300",
        "WORKER_WAIT_TIMEOUT": "30",
        "WORKER_WAIT_INTERVAL": "0.5",
        "SYNC_WINDOW_DAYS": "90",
    }
    return env, users


def _remove_tree(path: Path) -> list[str]:
    """Remove a file, link or directory tree without following links out of it; return [path] if it stays."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError:
        return [str(path)]
    try:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)  # fd-based on Linux: never follows a link inside the tree
        else:
            os.unlink(path)
    except OSError:
        return [str(path)] if os.path.lexists(path) else []
    return []


def _stop_signal(name: str) -> int:
    """SIGINT is PostgreSQL's fast shutdown; everything else stops on SIGTERM."""
    return signal.SIGINT if name == "db" else signal.SIGTERM
