"""What the operator sees when Docker itself is the problem: one line, exit 1, never a traceback.

Runbook: every host procedure starts on the HOST-SERVER-TERMINAL with ``docker``.
A stopped daemon and a misspelt name are produced by the real docker CLI (against a
socket nothing listens on, and against the session's private engine) and a hung
daemon is a private dockerd frozen with SIGSTOP; the fake replays only what a real
engine cannot produce here: a socket the user may not open (these tests run as
root, who may open any socket).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from host_helpers import fake_docker, no_docker  # noqa: F401

COMMANDS = [
    ("host", "redis-password"),
    ("host", "worker-cmd"),
    ("host", "networks"),
    ("host", "code-hash"),
    ("host", "logs"),
    ("host", "env-diff"),
    ("host", "check"),
]
IDS = [" ".join(argv) for argv in COMMANDS]


def one_error_line(result) -> str:
    """The error line (plus at most its hint), and nothing that looks like a crash."""
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith(("✗ error:", "x error:")), result.stderr
    return result.stderr


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
def test_missing_docker_cli_is_one_line_naming_path(cli, no_docker, argv):
    result = cli(*argv)

    assert result.exit_code == 1
    assert "docker CLI not found on PATH" in one_error_line(result)


@pytest.fixture
def dead_daemon(tmp_path, monkeypatch) -> str:
    """The real docker CLI pointed at a socket nothing listens on: a stopped daemon, in Docker's own words."""
    endpoint = f"unix://{tmp_path / 'docker.sock'}"
    monkeypatch.setenv("DOCKER_HOST", endpoint)
    return endpoint


@pytest.fixture
def real_engine(docker_scenario, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_scenario.engine.host)
    return docker_scenario.engine


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
def test_stopped_daemon_is_reported_as_unreachable_not_as_a_missing_container(cli, dead_daemon, argv):
    result = cli(*argv)

    assert result.exit_code == 1
    text = one_error_line(result)
    assert f"cannot connect to the Docker daemon at {dead_daemon}" in text
    assert "systemctl status docker" in text


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
def test_socket_permission_denied_suggests_sudo_or_the_docker_group(cli, fake_docker, argv):
    fake_docker.daemon("permission")

    result = cli(*argv)

    assert result.exit_code == 1
    text = one_error_line(result)
    assert "permission denied on the Docker daemon socket" in text
    assert "sudo" in text and "docker group" in text


@pytest.mark.parametrize(
    "argv",
    [
        ("host", "worker-cmd", "pms-wroker-v2"),
        ("host", "networks", "pms-wroker-v2"),
        ("host", "logs", "pms-wroker-v2"),
        ("host", "code-hash", "--container", "pms-wroker-v2"),
        ("host", "redis-password", "--container", "pms-wroker-v2"),
        ("host", "env-diff", "ct-redis", "pms-wroker-v2"),
    ],
    ids=["worker-cmd", "networks", "logs", "code-hash", "redis-password", "env-diff"],
)
def test_misspelt_container_name_is_not_found_with_a_docker_ps_hint(cli, real_engine, argv):
    result = cli(*argv)

    assert result.exit_code == 1
    text = one_error_line(result)
    assert "container pms-wroker-v2 not found" in text
    assert "docker ps -a" in text


@pytest.fixture
def hung_daemon(monkeypatch):
    """A second private dockerd, frozen with SIGSTOP: it accepts connections and never answers (a hung daemon)."""
    import os
    import signal
    import tempfile

    from docker_engine import DockerEngine, EngineUnavailable

    try:  # a short base: containerd's socket below it must fit a Unix socket path (108 bytes)
        engine = DockerEngine(Path(tempfile.mkdtemp(prefix="pmsops-hung-"))).start()
    except EngineUnavailable as exc:
        pytest.skip(f"no real Docker engine here: {exc}")
    os.kill(engine.proc.pid, signal.SIGSTOP)
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    yield engine
    os.kill(engine.proc.pid, signal.SIGCONT)
    engine.stop()


def test_hung_daemon_times_out_after_the_given_seconds(cli, hung_daemon):
    result = cli("host", "worker-cmd", "--timeout", "0.5")

    assert result.exit_code == 1
    text = one_error_line(result)
    assert "docker inspect timed out after 0.5 s" in text
    assert "the Docker daemon is slow or hung" in text


def test_host_check_reports_a_stopped_daemon_once_not_once_per_part(cli, dead_daemon):
    result = cli("host", "check", "--json")

    assert result.exit_code == 1
    assert result.stderr.count("cannot connect to the Docker daemon") == 1


@pytest.mark.parametrize("name", ["-f", "--format={{.Config.Env}}", "pms worker", "../etc", ""])
def test_a_container_name_that_docker_would_read_as_an_option_is_refused_with_exit_2(cli, fake_docker, name):
    result = cli("host", "worker-cmd", "--", name) if name.startswith("-") else cli("host", "worker-cmd", name)

    assert result.exit_code == 2
    assert "not a valid container name" in result.stderr
    assert fake_docker.calls() == []


def test_every_docker_call_has_a_timeout(cli, fake_docker, monkeypatch, tmp_path):
    import pmsops.host.docker as docker_module

    seen: list[float] = []
    real_run = subprocess.run

    def checked_run(*args, **kwargs):
        assert kwargs.get("timeout") and kwargs["timeout"] > 0, f"docker called without a timeout: {args}"
        seen.append(kwargs["timeout"])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(docker_module.subprocess, "run", checked_run)

    local = tmp_path / "sync_engine.py"
    local.write_text("checkout\n")

    result = cli("host", "check", "--timeout", "7", "--local", str(local))

    assert len(seen) == len(fake_docker.calls()) >= 10
    assert set(seen) == {7.0}
    assert result.exit_code == 1, result.output  # every part ran: only the code hash fails (the --local file is another checkout)
    assert "code hash FAILED" in result.output


def test_only_the_docker_module_starts_processes():
    """One place to audit for timeouts and for never using a shell."""
    host = Path(__file__).resolve().parent.parent / "src" / "pmsops" / "host"
    starters = re.compile(r"\bsubprocess\b|\bos\.system\b|\bos\.popen\b|\bPopen\b|\bexecv")

    offenders = [p.name for p in host.glob("*.py") if p.name != "docker.py" and starters.search(p.read_text(encoding="utf-8"))]

    assert offenders == []
    assert "shell=True" not in (host / "docker.py").read_text(encoding="utf-8")


# --- the fake itself: Docker's formats, so the tests above mean something ------------------------------------------


def test_fake_docker_inspect_prints_a_json_array_and_docker_s_not_found_text(fake_docker):
    found = subprocess.run(["docker", "inspect", "pms-worker-v2"], capture_output=True, text=True, timeout=10)
    missing = subprocess.run(["docker", "inspect", "nope"], capture_output=True, text=True, timeout=10)

    data = json.loads(found.stdout)
    assert isinstance(data, list) and {"Id", "State", "Config", "NetworkSettings", "Image", "Name"} <= set(data[0])
    assert {"Cmd", "Env", "Image", "Entrypoint", "User"} <= set(data[0]["Config"])
    assert (missing.returncode, missing.stdout.strip(), missing.stderr.strip()) == (1, "[]", "Error: No such object: nope")


def test_fake_docker_exec_fails_the_way_docker_does(fake_docker):
    fake_docker.inside("pms-worker-v2", missing=["getent"])
    no_getent = subprocess.run(["docker", "exec", "pms-worker-v2", "getent", "hosts", "x"], capture_output=True, text=True, timeout=10)
    fake_docker.stop("pms-worker-v2")
    stopped = subprocess.run(["docker", "exec", "pms-worker-v2", "true"], capture_output=True, text=True, timeout=10)

    assert no_getent.returncode == 126 and "executable file not found in $PATH" in no_getent.stdout and no_getent.stderr == ""
    assert stopped.returncode == 1 and re.fullmatch(r"Error response from daemon: Container [0-9a-f]{64} is not running\n", stopped.stderr)
