"""Issue #10: another local user, planted links and hostile files get nothing from root running pmsops.

The attacks are real: a second local user (created with useradd) plants directories,
modules and links with ``runuser``; then the real commands run as root.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from local_user import as_intruder, intruder, run_bounded

CID = "6f1c2b9e-3d4a-4b5c-8d6e-7f8091a2b3c4"
PLANTED = 'open({marker!r}, "w").write("x")\n'


def one_line_error(result, text: str) -> None:
    """Exit 2, a single ``✗ error:`` line containing ``text``, no traceback, nothing on stdout."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("✗")]
    assert len(errors) == 1 and errors[0].startswith("✗ error: ") and text in errors[0], result.stderr
    assert result.stdout == ""


@pytest.fixture
def shared_dir():
    """A root-owned sticky directory everyone may write to, like /tmp (inside /tmp, so the second user can reach it)."""
    path = Path(tempfile.mkdtemp(prefix="pmsops-shared-"))
    os.chmod(path, 0o1777)
    yield path
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _take_down_if_started(directory: Path) -> None:
    """Old code would start a whole stack in the planted directory: kill it so one failing test does not leak servers."""
    try:
        state = json.loads((directory / "sandbox.json").read_text())
    except (OSError, ValueError):
        return
    for comp in state.get("components", {}).values():
        try:
            os.killpg(comp["pid"], signal.SIGKILL)
        except OSError:
            pass


# --- the sandbox's state directory ------------------------------------------------------------------------------------------


def test_sandbox_up_in_a_directory_another_user_planted_exits_2_and_runs_none_of_their_modules(cli, shared_dir, tmp_path, monkeypatch):
    user = intruder()
    marker = tmp_path / "PWNED"  # only root can write here: it appears only if root ran the planted code
    monkeypatch.delenv("PMSOPS_SANDBOX_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared_dir))  # the default directory, as in the report: $XDG_RUNTIME_DIR/pmsops-sandbox-UID
    planted = shared_dir / f"pmsops-sandbox-{os.getuid()}"
    code = PLANTED.format(marker=str(marker))
    as_intruder(user, f"mkdir -m 777 {planted} && for m in uvicorn celery redis httpx; do printf '%s' '{code}' > {planted}/$m.py; done")
    before = sorted(os.listdir(planted))
    try:
        result = cli("sandbox", "up")
    finally:
        _take_down_if_started(planted)
    one_line_error(result, f"unsafe sandbox directory {planted}: it belongs to uid {user.pw_uid}, not to you")
    assert not marker.exists()
    assert sorted(os.listdir(planted)) == before  # no sandbox.env, no logs written into their directory
    info = os.lstat(planted)
    assert stat.S_IMODE(info.st_mode) == 0o777 and info.st_uid == user.pw_uid


def test_sandbox_up_does_not_follow_a_symlink_planted_at_its_directory(cli, shared_dir, monkeypatch):
    user = intruder()
    loot = shared_dir / "loot"
    link = shared_dir / "pmsops-sandbox-0"
    as_intruder(user, f"mkdir -m 777 {loot} && ln -s {loot} {link}")
    try:
        result = cli("sandbox", "up", "--dir", str(link))
    finally:
        _take_down_if_started(loot)
    one_line_error(result, f"unsafe sandbox directory {link}: it is a symbolic link")
    assert os.listdir(loot) == []  # no sandbox.env with every secret in it
    assert stat.S_IMODE(os.stat(loot).st_mode) == 0o777  # and its mode is not changed


def test_sandbox_commands_refuse_a_state_file_another_user_planted(cli, shared_dir, tmp_path):
    """Their sandbox.json would choose the processes root kills, the directories it deletes and the command it runs."""
    user = intruder()
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a process of root's
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "data").write_text("keep me")
    marker = tmp_path / "PWNED"
    state = {
        "directory": "x",
        "env": {},
        "components": {
            "db": {"pid": victim.pid, "port": None, "basedir": str(keep)},
            "worker": {"pid": 2**22 + 1, "port": None, "argv": ["/bin/sh", "-c", f"touch {marker}"], "log": "/dev/null"},
        },
    }
    planted = shared_dir / "their-sandbox"
    as_intruder(user, f"mkdir -m 755 {planted} && cat > {planted}/sandbox.json <<'EOF'\n{json.dumps(state)}\nEOF")
    try:
        started = cli("sandbox", "start", "worker", "--dir", str(planted))
        stopped = cli("sandbox", "down", "--dir", str(planted))
        assert victim.poll() is None  # not killed
    finally:
        victim.kill()
        victim.wait()
    one_line_error(started, f"unsafe sandbox directory {planted}: it belongs to uid {user.pw_uid}")
    one_line_error(stopped, f"unsafe sandbox directory {planted}: it belongs to uid {user.pw_uid}")
    assert not marker.exists()
    assert (keep / "data").read_text() == "keep me"


def _plant_state(directory: Path) -> None:
    (directory / "sandbox.json").write_text(json.dumps({"directory": str(directory), "components": {}, "env": {}, "external_db": True}))


def _group_writable(tmp_path: Path) -> Path:
    path = tmp_path / "sb"
    path.mkdir()
    _plant_state(path)
    path.chmod(0o770)
    return path


def _world_writable_sticky(tmp_path: Path) -> Path:
    path = tmp_path / "sb"
    path.mkdir()
    _plant_state(path)
    path.chmod(0o1777)
    return path


def _link_to_our_own_private_directory(tmp_path: Path) -> Path:
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    _plant_state(target)
    (tmp_path / "sb").symlink_to(target)
    return tmp_path / "sb"


def _inside_a_parent_others_can_write(tmp_path: Path) -> Path:
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)  # not sticky: anyone could rename our directory away and put theirs in its place
    path = parent / "sb"
    path.mkdir(mode=0o700)
    _plant_state(path)
    return path


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (_group_writable, "other users can write to it (mode 770)"),
        (_world_writable_sticky, "other users can write to it (mode 1777)"),
        (_link_to_our_own_private_directory, "it is a symbolic link"),
        (_inside_a_parent_others_can_write, "is writable by other users and not sticky (mode 777)"),
    ],
    ids=["group-writable", "world-writable-sticky", "symlink", "parent-writable-by-others"],
)
def test_unsafe_sandbox_directory_is_bad_input_in_one_line(cli, tmp_path, shape, reason):
    directory = shape(tmp_path)

    result = cli("sandbox", "status", "--dir", str(directory))

    one_line_error(result, reason)


def test_sandbox_directory_inside_another_users_directory_is_refused(cli, shared_dir):
    user = intruder()
    parent = shared_dir / "theirs"
    as_intruder(user, f"mkdir -m 1777 {parent}")  # sticky, but its owner may still delete or rename our entries

    try:
        result = cli("sandbox", "up", "--dir", str(parent / "sb"))
    finally:
        _take_down_if_started(parent / "sb")

    one_line_error(result, f"its parent {parent} belongs to uid {user.pw_uid}")
    assert os.listdir(parent) == []


def test_sandbox_children_do_not_import_modules_planted_in_their_working_directory(tmp_path):
    """The defence behind the 0700 directory: -P / PYTHONSAFEPATH=1, so `python -m uvicorn` never imports ./uvicorn.py."""
    from pmsops.sandbox.processes import alive
    from pmsops.sandbox.stack import Sandbox
    from pmsops.sandbox.state import SandboxState

    directory = tmp_path / "sb"
    directory.mkdir(mode=0o700)
    marker = tmp_path / "PWNED"
    for module in ("uvicorn", "celery"):
        (directory / f"{module}.py").write_text(PLANTED.format(marker=str(marker)))
    sandbox = Sandbox.at(directory)
    state = SandboxState(str(directory))
    for name, module in (("api", "uvicorn"), ("worker", "celery")):
        sandbox._spawn(state, name, [sys.executable, "-m", module, "--version"], {})
        pid = state.components[name].pid
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    assert not marker.exists()
    assert "uvicorn" in (directory / "api.log").read_text().lower()  # the real uvicorn answered --version
    assert (directory / "worker.log").read_text().strip()[:1].isdigit()  # the real celery printed its version


def test_sandbox_up_writes_only_private_files_and_down_removes_every_one(cli, tmp_path):
    from pmsops.sandbox.stack import Sandbox

    directory = tmp_path / "stack"
    result = cli("sandbox", "up", "--dir", str(directory))
    try:
        assert result.exit_code == 0, result.output
        state = Sandbox.at(directory).load()
        basedir = Path(state.components["db"].basedir)
        seen, wrong = {}, {}
        for root, prefix in ((directory, ""), (basedir, "pg:")):
            for path in [root, *root.rglob("*")]:
                info = os.lstat(path)
                if stat.S_ISSOCK(info.st_mode):
                    continue
                assert stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode), path
                name = prefix + str(path.relative_to(root))
                seen[name] = mode = stat.S_IMODE(info.st_mode)
                if mode != (0o700 if stat.S_ISDIR(info.st_mode) else 0o600):
                    wrong[name] = f"{mode:o}"
        assert wrong == {}
        for name in ("sandbox.json", "sandbox.env", "api.log", "platform.log", "worker.log", "redis/redis.conf", "redis/redis.log"):
            assert seen[name] == 0o600, name
        assert seen["pg:postgres.log"] == 0o600 and seen["pg:data"] == 0o700
        python = [comp.argv for comp in state.components.values() if comp.argv]
        assert len(python) == 3 and all(argv[:2] == [sys.executable, "-P"] for argv in python)
    finally:
        down = cli("sandbox", "down", "--dir", str(directory))
    assert down.exit_code == 0, down.output
    assert f"removed {directory}" in down.stdout
    assert not os.path.lexists(directory) and not os.path.lexists(basedir)


def test_sandbox_down_removes_only_what_up_created_and_keeps_the_operators_files(cli, tmp_path):
    directory = tmp_path / "mine"
    directory.mkdir(mode=0o700)
    (directory / "notes.txt").write_text("mine")
    (directory / "redis").mkdir()
    (directory / "redis" / "redis.conf").write_text("port 1")
    for name in ("sandbox.env", "api.log"):
        (directory / name).write_text("x")
    (directory / "sandbox.json").write_text(
        json.dumps(
            {
                "directory": str(directory),
                "created_directory": False,
                "components": {},
                "env": {},
                "created": ["sandbox.json", "redis", "sandbox.env", "api.log"],
            }
        )
    )

    result = cli("sandbox", "down", "--dir", str(directory))

    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(directory)) == ["notes.txt"]
    assert "the directory existed before, kept" in result.stdout


def test_sandbox_down_does_not_kill_a_process_that_reused_a_recorded_pid(cli, tmp_path):
    """After a reboot a stale sandbox.json names pids that now belong to other programs: root must not signal them."""
    directory = tmp_path / "stale"
    directory.mkdir(mode=0o700)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (directory / "sandbox.json").write_text(
            json.dumps(
                {
                    "directory": str(directory),
                    "created_directory": True,
                    "created": ["sandbox.json"],
                    "env": {},
                    "components": {"api": {"pid": stranger.pid, "started": "1", "port": None}},
                }
            )
        )
        result = cli("sandbox", "down", "--dir", str(directory))
        alive = stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    assert alive
    assert result.exit_code == 0, result.output
    assert f"not running (pid {stranger.pid} gone or reused: not signalled)" in result.stdout


def test_sandbox_up_refuses_a_symlink_in_place_of_a_directory_it_creates(cli, tmp_path):
    directory = tmp_path / "sb"
    directory.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (directory / "redis").symlink_to(elsewhere)  # left by anyone who could write here before: never followed

    try:
        result = cli("sandbox", "up", "--dir", str(directory))
    finally:
        _take_down_if_started(directory)

    one_line_error(result, f"{directory / 'redis'} already exists and was not created by sandbox up (it is a symbolic link)")
    assert os.listdir(elsewhere) == []
    assert sorted(os.listdir(directory)) == ["redis"] and (directory / "redis").is_symlink()  # up removed its state file, nothing else


def test_sandbox_start_does_not_append_its_log_through_a_symlink(cli, tmp_path, victim):
    directory = tmp_path / "sb"
    directory.mkdir(mode=0o700)
    (directory / "worker.log").symlink_to(victim)
    (directory / "sandbox.json").write_text(
        json.dumps(
            {
                "directory": str(directory),
                "created_directory": True,
                "env": {},
                "created": ["sandbox.json", "worker.log"],
                "components": {"worker": {"pid": 2**22 + 1, "port": None, "argv": ["/bin/echo", "log line"], "log": str(directory / "worker.log")}},
            }
        )
    )

    result = cli("sandbox", "start", "worker", "--dir", str(directory))

    one_line_error(result, f"refusing to write log {directory / 'worker.log'}: it is a symbolic link")
    assert json.loads((directory / "sandbox.json").read_text())["components"]["worker"]["pid"] == 2**22 + 1  # nothing was started
    assert victim.read_text() == "original\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644


# --- worker-start --------------------------------------------------------------------------------------------------


def _worker_start(cwd: Path, extra: dict[str, str]) -> subprocess.CompletedProcess:
    args = [sys.executable, "-P", "-m", "pmsops", "worker-start", "--no-wait"] + (["--allow-root"] if os.geteuid() == 0 else [])
    return subprocess.run(args, cwd=cwd, env={**os.environ, **extra}, capture_output=True, text=True, timeout=60)


def test_worker_start_runs_the_real_celery_not_a_celery_py_in_the_working_directory(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir(mode=0o755)
    marker = tmp_path / "PWNED"
    (app_dir / "celery.py").write_text(PLANTED.format(marker=str(marker)))

    done = _worker_start(app_dir, {"CELERY_APP": "pmsops_no_such_app"})

    assert not marker.exists()
    assert "Unable to load celery application" in done.stdout + done.stderr  # the real Celery ran, and said so


def test_worker_start_refuses_a_working_directory_other_users_can_write(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    app_dir.chmod(0o1777)

    done = _worker_start(app_dir, {"CELERY_APP": "pmsops_no_such_app"})

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"✗ error: refusing to start the worker from {app_dir}: other users can write to it")
    assert "Traceback" not in done.stderr and "Unable to load celery application" not in done.stdout + done.stderr


# --- files the tool writes: --junit, --save ------------------------------------------------------------------------------


@pytest.fixture
def victim(tmp_path):
    """A file of root's that a planted link points at."""
    path = tmp_path / "victim.conf"
    path.write_text("original\n")
    path.chmod(0o644)
    return path


def _write_report(cli, option: str, target: str, http_stub, monkeypatch):
    if option == "--junit":
        return cli("smoke", "--junit", target)  # no environment: step 1 fails, the report is still written
    http_stub.json(f"/api/v1/channel-connections/{CID}/sync-logs", {"connection_id": CID, "logs": []})
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    return cli("sync", "logs", CID, "--save", target)


@pytest.mark.parametrize("option", ["--junit", "--save"])
def test_report_target_symlinked_by_another_user_is_refused_and_its_target_unchanged(cli, option, shared_dir, victim, http_stub, monkeypatch):
    user = intruder()
    link = shared_dir / "report.out"
    as_intruder(user, f"ln -s {victim} {link}")

    result = _write_report(cli, option, str(link), http_stub, monkeypatch)

    one_line_error(result, f"refusing to write report {link}: it is a symbolic link")
    assert victim.read_text() == "original\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert link.is_symlink()


@pytest.mark.parametrize("option", ["--junit", "--save"])
def test_new_report_file_is_private_mode_0600(cli, option, tmp_path, http_stub, monkeypatch):
    target = tmp_path / "report.out"

    _write_report(cli, option, str(target), http_stub, monkeypatch)

    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.out"]  # no temporary file left behind


def test_report_target_that_is_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "report.xml"
    os.mkfifo(fifo)
    try:
        done = subprocess.run([sys.executable, "-P", "-m", "pmsops", "smoke", "--junit", str(fifo)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("writing the report blocked on the FIFO")
    assert done.returncode == 2 and done.stderr.startswith(f"✗ error: refusing to write report {fifo}: it is a FIFO"), done.stderr


def test_redis_conf_that_never_ends_is_refused_at_once():
    done = run_bounded("compare-password-hash", "--url", "redis://:x@127.0.0.1:6379/0", "--redis-conf", "/dev/zero")

    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr == "✗ error: redis.conf is a character device, not a regular file: /dev/zero\n"


def test_worker_check_expected_hash_of_a_fifo_fails_at_once_instead_of_hanging(tmp_path):
    import threading

    from pmsops.procedures.worker_check import check_code

    fifo = tmp_path / "sync_engine.py"
    os.mkfifo(fifo)
    found = []
    worker = threading.Thread(target=lambda: found.extend(check_code([f"{fifo}=abcdef12"])), daemon=True)
    worker.start()
    worker.join(1.0)
    hung = worker.is_alive()
    if hung:  # old behaviour: blocked opening the FIFO; be its writer so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
    assert not hung, "hashing blocked on a FIFO"
    assert [(r.status.value, r.summary) for r in found] == [("fail", f"cannot hash: {fifo} is a FIFO, not a regular file")]
