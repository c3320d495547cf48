"""Process supervision (pmsops.sandbox.processes) and the sandbox state file, with real child processes.

The sandbox, the test fixtures and the benchmarks start, wait for and stop their children
through one module; these tests pin what that module promises an operator: a child that dies
during start-up is reported at once (not after the whole timeout), a child that ignores SIGTERM
is gone after the grace period with its children, and a sandbox.json that is not what `up`
writes is refused in one line instead of signalling whatever it names.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmsops.errors import UsageError
from pmsops.sandbox import processes
from pmsops.sandbox.servers import free_port
from test_security_local_user import one_line_error

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_spawned_child_gets_its_own_session_a_077_umask_the_given_cwd_and_safe_python_path(tmp_path):
    probe = "import json, os; print(json.dumps([os.getsid(0) == os.getpid(), os.umask(0), os.getcwd(), os.environ.get('PYTHONSAFEPATH')]))"
    proc = processes.spawn(processes.python_argv("-c", probe), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)

    assert json.loads(out) == [True, 0o077, str(tmp_path), "1"], err


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_a_child_is_never_started_in_a_directory_other_users_can_write(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)

    with pytest.raises(UsageError) as refused:
        processes.spawn(["true"], cwd=shared)

    assert str(refused.value) == f"refusing to start a process in {shared}: other users can write to it (mode {mode:o})"


def test_a_child_that_exits_during_start_up_is_reported_at_once_not_after_the_timeout(tmp_path):
    proc = processes.spawn([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path)
    started = time.monotonic()

    with pytest.raises(processes.NotReady) as failure:
        processes.wait_for_port(free_port(), 30, "api", exited=processes.exited(proc))

    assert failure.value.exited is True
    assert time.monotonic() - started < 5
    assert proc.returncode == 3


def test_a_port_that_never_opens_fails_after_its_deadline_naming_what_and_the_port(tmp_path):
    port = free_port()
    started = time.monotonic()

    with pytest.raises(processes.NotReady) as failure:
        processes.wait_for_port(port, 0.5, "platform")

    assert failure.value.exited is False
    assert str(failure.value) == f"platform did not listen on port {port} within 0.5 s"
    assert 0.5 <= time.monotonic() - started < 3


def test_a_child_ignoring_sigterm_and_its_own_child_are_killed_after_the_grace_period(tmp_path):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    script = (
        f"import signal, subprocess, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "  # ignored before the pid is printed: no race
        f"child = subprocess.Popen([sys.executable, '-c', {stubborn!r}]); print(child.pid, flush=True); exec({stubborn!r})"
    )
    proc = processes.spawn([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.PIPE)
    grandchild = int(proc.stdout.readline())
    started = time.monotonic()

    processes.stop(proc, grace=0.5)

    assert proc.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5
    assert _gone(grandchild, 5)


def test_black_hole_accepts_and_never_answers():
    import socket

    hole = processes.BlackHole()
    try:
        with socket.create_connection(("127.0.0.1", hole.port), timeout=2) as conn:
            conn.settimeout(0.3)
            conn.sendall(b"PING\r\n")
            with pytest.raises(socket.timeout):
                conn.recv(1)
    finally:
        hole.close()


# --- sandbox.json ---------------------------------------------------------------------------------------------


def _write_state(directory, components: dict) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    (directory / "sandbox.json").write_text(
        json.dumps(
            {
                "directory": str(directory),
                "created_directory": True,
                "created": ["sandbox.json"],
                "components": components,
                "env": {},
                "external_db": False,
            }
        )
    )


def test_sandbox_down_stops_a_process_recorded_in_the_existing_state_format(cli, tmp_path):
    directory = tmp_path / "sb"
    directory.mkdir(mode=0o700)
    child = processes.spawn(["sleep", "60"], cwd=directory)
    _write_state(
        directory,
        {
            "api": {
                "pid": child.pid,
                "started": processes.start_time(child.pid),
                "port": None,
                "argv": ["sleep", "60"],
                "log": str(directory / "api.log"),
            }
        },
    )

    result = cli("sandbox", "down", "--dir", str(directory))

    assert result.exit_code == 0, result.output
    assert f"stopped (pid {child.pid})" in result.stdout
    child.wait(5)  # down reaped it already (it is our child here): the exit status is not ours to read
    assert not processes.alive(child.pid)
    assert not directory.exists()


@pytest.mark.parametrize(
    "component, field_error",
    [
        ({"pid": "1234", "port": None}, "components.api.pid must be an integer"),
        ({"pid": 1234, "port": "80"}, "components.api.port must be an integer"),
        ({"pid": -1, "port": None}, "components.api.pid must be a positive integer"),
        ({"pid": 1234, "port": None, "argv": "sleep 60"}, "components.api.argv must be a list of strings"),
        ("1234", "components.api must be an object"),
    ],
)
def test_sandbox_down_refuses_a_state_file_of_the_wrong_shape_in_one_line(cli, tmp_path, component, field_error):
    directory = tmp_path / "sb"
    _write_state(directory, {"api": component})

    result = cli("sandbox", "down", "--dir", str(directory))

    one_line_error(result, f"sandbox state {directory / 'sandbox.json'} is not in the expected format: {field_error}")
    assert (directory / "sandbox.json").exists()


def test_sandbox_start_of_a_component_the_state_cannot_restart_is_refused_in_one_line(cli, tmp_path):
    directory = tmp_path / "sb"
    _write_state(directory, {"worker": {"pid": 2**22 + 1, "port": None, "log": str(directory / "worker.log")}})

    result = cli("sandbox", "start", "worker", "--dir", str(directory))

    one_line_error(result, f"cannot start worker: {directory / 'sandbox.json'} does not say how it was started")
    assert os.listdir(directory) == ["sandbox.json"]


def test_a_server_on_a_socket_its_parent_bound_counts_as_ready_only_once_it_answers_http(tmp_path):
    """The port is ours from the bind on (no other process can take it before the child serves), and an open port is
    no sign of life: the kernel queues connections to a bound socket before anyone serves it."""
    sock = processes.listening_socket()
    port = sock.getsockname()[1]
    try:
        assert processes.port_open(port) is True
        assert processes.http_answers(port, timeout=0.3) is False
        argv = processes.python_argv("-m", "pmsops.sandbox.fake_platform", "--fd", str(sock.fileno()))
        proc = processes.spawn(argv, cwd=tmp_path, env={**os.environ, "PYTHONPATH": SRC}, pass_fds=(sock.fileno(),))
    finally:
        sock.close()
    try:
        processes.wait_for_http(port, 30, "fake platform", exited=processes.exited(proc))
        assert processes.http_answers(port) is True
    finally:
        processes.stop(proc)


def test_a_sandbox_server_restarted_while_another_process_holds_its_port_fails_at_once_naming_the_port(tmp_path):
    import socket

    from pmsops.errors import OperationError
    from pmsops.sandbox.stack import Sandbox
    from pmsops.sandbox.state import Component, SandboxState

    directory = tmp_path / "sb"
    directory.mkdir(mode=0o700)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    sandbox = Sandbox.at(directory)
    state = SandboxState(str(directory))
    gone = processes.spawn(["true"], cwd=directory)
    gone.wait(10)
    state.components["platform"] = Component(gone.pid, None, port=port, argv=processes.python_argv("-m", "pmsops.sandbox.fake_platform"))
    sandbox.save(state)
    try:
        with pytest.raises(OperationError) as refused:
            sandbox.start("platform")
    finally:
        holder.close()
    assert refused.value.message == f"cannot start platform: port {port} is taken by another process (Address already in use)"
    assert "platform.log" not in os.listdir(directory)  # nothing was started


def test_a_socket_for_a_child_never_takes_the_place_of_stdin_stdout_or_stderr():
    """Run with stdin closed (cron), socket() returns fd 0, where the child's stdin (/dev/null) would then go."""
    code = (
        "import os; os.close(0); from pmsops.sandbox.processes import listening_socket; s = listening_socket();"
        " print(s.fileno(), os.path.exists('/proc/self/fd/0'))"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    fd, low_still_open = done.stdout.split()
    assert int(fd) >= 3 and low_still_open == "False"  # moved, and the low descriptor given back


def test_a_handed_over_socket_is_not_passed_on_to_the_childs_own_children():
    parent = processes.listening_socket()
    fd = os.dup(parent.fileno())
    parent.close()
    os.set_inheritable(fd, True)  # as pass_fds leaves it in the child
    sock = processes.inherited_socket(fd)
    try:
        assert sock.get_inheritable() is False
    finally:
        sock.close()
