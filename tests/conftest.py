"""Shared fixtures: the CLI runner and real servers on free loopback ports.

Servers are session-scoped (2 cores: start each once). Passwords carry the
characters the runbook warns about, so every test exercises encoding for real.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
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

    from pmsops.cli.common import STATE
    from pmsops.cli.main import main

    STATE.no_color = False
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        code = main(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return CliResult(code, stdout, stderr)


@pytest.fixture
def cli():
    return invoke


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No test sees the machine's own Redis/DB variables."""
    for name in list(os.environ):
        if name in {"REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL", "PMS_API_URL", "API",
                    "API_BASE_URL", "BACKEND_URL", "TOKEN", "JWT_TOKEN", "SB_URL", "ANON_KEY", "EMAIL", "PASSWORD",
                    "JWT_SECRET", "SUPABASE_JWT_SECRET", "ENCRYPTION_KEY", "NO_COLOR"} or name.startswith(("WORKER_WAIT_", "CELERY_")):
            monkeypatch.delenv(name, raising=False)
    yield
    REDACTOR.forget_all()


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
def black_hole():
    """A TCP listener that accepts connections and never answers (a black-holed dependency)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(1)
    for conn in accepted:
        conn.close()
    sock.close()


@pytest.fixture(scope="session")
def refused_port():
    """A loopback port nothing listens on."""
    from pmsops.sandbox.servers import free_port

    return free_port()
