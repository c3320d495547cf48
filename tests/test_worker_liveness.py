"""``worker-check --liveness`` (the cheap HEALTHCHECK) and stop signals during the wait, on this host.

The container scenarios are in test_container_worker.py; these use real sync workers
and redis-servers started here, and cost a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REDIS_PASSWORD, TESTS, start_worker, stop_worker

PMSOPS = [sys.executable, "-P", "-m", "pmsops"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), os.environ.get("PYTHONPATH", "")]), **extra}


def _worker_env(beacon) -> dict[str, str]:
    """This checkout's sources first (start_worker's PYTHONPATH is the repository root only)."""
    return {
        "WORKER_BEACON_FILE": str(beacon),
        "WORKER_BEACON_INTERVAL": "0.5",
        "SYNC_REAP_INTERVAL": "0",
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS.parent)]),
    }


def _liveness(beacon, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PMSOPS, "worker-check", "--liveness", *args],
        env=_env(WORKER_BEACON_FILE=str(beacon), WORKER_BEACON_INTERVAL="0.5"),
        capture_output=True,
        text=True,
        timeout=30,
    )


def _module_liveness(beacon, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-P", "-m", "pmsops.worker.alive", *args],
        env=_env(WORKER_BEACON_FILE=str(beacon), WORKER_BEACON_INTERVAL="0.5"),
        capture_output=True,
        text=True,
        timeout=30,
    )


def _until(predicate, timeout: float, what: str):
    from pmsops.sandbox.processes import wait_until

    wait_until(predicate, timeout, what)


def test_liveness_check_imports_no_celery_kombu_redis_or_asyncpg(tmp_path):
    code = (
        "import sys\nfrom pmsops.cli.main import main\ncode = main(['worker-check', '--liveness'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'kombu', 'redis', 'asyncpg', 'httpx', 'billiard'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], env=_env(WORKER_BEACON_FILE=str(tmp_path / "none")), capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip().endswith("[]"), done.stdout + done.stderr
    assert "no beacon at" in done.stdout


def test_module_liveness_imports_only_the_beacon_reader(tmp_path):
    code = (
        "import sys\nfrom pmsops.worker.alive import main\ncode = main([])\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {'celery',"
        " 'kombu', 'redis', 'typer', 'rich', 'click'} or m.startswith('pmsops.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], env=_env(WORKER_BEACON_FILE=str(tmp_path / "none")), capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip().endswith("['pmsops.beacon', 'pmsops.visible', 'pmsops.worker', 'pmsops.worker.alive']"), done.stdout + done.stderr


def test_module_liveness_rejects_a_bad_max_age_with_exit_2(tmp_path):
    done = _module_liveness(tmp_path / "none", "--max-age", "nan")
    assert done.returncode == 2 and "usage" in done.stderr and "Traceback" not in done.stderr


def test_liveness_follows_a_real_worker_from_start_to_shutdown(redis_server, tmp_path):
    beacon = tmp_path / "beacon"
    broker = redis_server.url_for_db(7)
    proc = start_worker(broker, "alive@pmsops-test", app="pmsops.sync.worker:celery_app", extra_env=_worker_env(beacon))
    try:
        _until(beacon.exists, 10, "the worker wrote no beacon")
        alive = _liveness(beacon)
        assert alive.returncode == 0, alive.stdout + alive.stderr
        assert "alive@pmsops-test: alive, last beat" in alive.stdout
        assert oct(beacon.stat().st_mode & 0o777) == "0o600"
        module = _module_liveness(beacon)
        assert module.returncode == 0 and "alive@pmsops-test: alive" in module.stdout
    finally:
        stop_worker(proc)
    gone = _liveness(beacon)
    assert gone.returncode == 1 and "no beacon at" in gone.stdout  # removed at warm shutdown: a stopped worker is not alive
    assert _module_liveness(beacon).returncode == 1


def test_worker_that_loses_its_broker_turns_not_alive_within_the_max_age(tmp_path):
    from pmsops.sandbox.servers import RedisServer

    redis = RedisServer(REDIS_PASSWORD).start()
    beacon = tmp_path / "beacon"
    proc = start_worker(redis.url, "lost@pmsops-test", app="pmsops.sync.worker:celery_app", extra_env=_worker_env(beacon))
    try:
        _until(lambda: _liveness(beacon).returncode == 0, 10, "the worker never looked alive")
        redis.stop()
        _until(lambda: _liveness(beacon, "--max-age", "2").returncode == 1, 15, "a worker without its broker still looked alive")
    finally:
        stop_worker(proc)
        redis.stop()


def test_beacon_of_another_user_or_a_link_is_not_trusted(tmp_path):
    target = tmp_path / "real"
    target.write_text('{"node": "x", "pid": 1, "time": 9999999999}')
    link = tmp_path / "beacon"
    link.symlink_to(target)
    done = _liveness(link)
    assert done.returncode == 1 and "cannot read beacon" in done.stdout


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_while_waiting_exits_at_once_with_one_line(refused_port, sig, code):
    proc = subprocess.Popen(
        [*PMSOPS, "wait-for-deps", "--timeout", "120", "--interval", "0.2", "--", sys.executable, "-c", "print('COMMAND-RAN')"],
        env=_env(
            WORKER_WAIT_DB_HOST="127.0.0.1",
            WORKER_WAIT_DB_PORT=str(refused_port),
            WORKER_WAIT_REDIS_HOST="127.0.0.1",
            WORKER_WAIT_REDIS_PORT=str(refused_port),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    while "not ready" not in "".join(lines):
        lines.append(proc.stdout.readline())
    started = time.monotonic()
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == code
    assert time.monotonic() - started < 2
    output = "".join(lines) + rest
    assert f"Stopped by {signal.Signals(sig).name} waiting for Database (127.0.0.1:{refused_port}): exiting {code}" in output
    assert "COMMAND-RAN" not in output


def test_a_second_worker_on_the_host_never_keeps_a_killed_ones_liveness_green(redis_server):
    """The default beacon is per user and node (#23 item 9): with one shared file, the sandbox's worker (or another
    deployment's) kept a dead worker's HEALTHCHECK green."""
    from pmsops.beacon import beacon_path

    broker = redis_server.url_for_db(7)
    env = {k: v for k, v in _worker_env("unused").items() if k != "WORKER_BEACON_FILE"}
    beacons = {node: beacon_path(env={}, node=node) for node in ("doomed@pmsops-test", "other@pmsops-test")}
    workers = {node: start_worker(broker, node, app="pmsops.sync.worker:celery_app", extra_env=env) for node in beacons}
    try:
        for node, path in beacons.items():
            _until(lambda path=path: os.path.exists(path), 10, f"{node} wrote no beacon")
        os.killpg(workers["doomed@pmsops-test"].pid, signal.SIGKILL)
        workers["doomed@pmsops-test"].wait()

        def liveness(node: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [*PMSOPS, "worker-check", "--liveness", "-d", node, "--max-age", "2"],
                env=_env(WORKER_BEACON_INTERVAL="0.5"),
                capture_output=True,
                text=True,
                timeout=30,
            )

        _until(lambda: liveness("doomed@pmsops-test").returncode == 1, 10, "the killed worker still looks alive")
        assert liveness("other@pmsops-test").returncode == 0
    finally:
        stop_worker(workers["other@pmsops-test"])
        for path in beacons.values():
            if os.path.exists(path):
                os.unlink(path)
