"""``pmsops top`` against the reference stack during an outage (platform down, worker stopped)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from observe_stack import outage  # noqa: F401

FRAME = re.compile(rb"\d\d:\d\d:\d\d UTC  refresh \d+ ms")
"""The header of one frame (drawn once per refresh)."""
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_top_json_shows_the_open_breaker_and_the_missing_worker(cli, outage):
    result = cli("--env-file", outage.env_file, "top", "--json", "--expect-workers", "1", "--broadcast-timeout", "0.5")

    assert result.exit_code == 1, result.output  # an expected worker is missing: a script sees it in the exit code too
    snap = json.loads(result.stdout)
    assert set(snap) >= {"workers", "queues", "active", "syncs", "platforms"}
    assert (snap["workers"]["expected"], snap["workers"]["answered"], snap["workers"]["missing"]) == (1, 0, 1)
    breakers = {p["platform"]: p["breaker"] for p in snap["platforms"]["items"]}
    assert breakers["airbnb"]["state"] == "open"
    assert 0 < breakers["airbnb"]["half_open_in_s"] <= 60
    assert breakers["booking_com"]["state"] == "closed"
    mine = [s for s in snap["syncs"]["recent"] if s["task_id"] in outage.task_ids]
    assert len(mine) == 6
    assert {(s["platform"], s["status"], s["error_type"]) for s in mine} == {("airbnb", "running", "circuit_open")}
    # waiting behind the open breaker spends no retry (issue #12): every one waits, with retries to spare
    assert all(s["retry"] <= 1 and s["max_retries"] == 3 and s["next_retry_in_s"] > 0 for s in mine)
    assert snap["queues"]["error"] is None and snap["syncs"]["error"] is None
    assert snap["cost"]["round_trips"] == {"redis_pipelines": 2, "db_queries": 1, "db_connects": 1, "broadcasts": 2}


def test_top_once_prints_one_frame_with_the_breaker_and_the_missing_worker(cli, outage):
    # a width of its own: at the 80 columns of a run without a terminal (a pytest-xdist worker) the panels sit side by side
    # and the MISSING line wraps; the width used to come from whatever terminal ran pytest
    result = cli("--env-file", outage.env_file, "top", "--once", "--expect-workers", "1", "--broadcast-timeout", "0.5", env={"COLUMNS": "160"})

    assert result.exit_code == 1, result.output  # MISSING on the screen is a failure in the exit code
    assert "MISSING 1 expected worker (0 of 1 answered)" in result.stdout
    assert "open — half-open in" in result.stdout
    assert result.stdout.count("pmsops top") == 1


def test_database_down_shows_database_unreachable_in_the_sync_panel_while_broker_panels_update(cli, outage, refused_port):
    env_file = Path(outage.env_file).with_name("db-down.env")
    env_file.write_text(Path(outage.env_file).read_text() + f"export DATABASE_URL='postgresql://pms_app:x@127.0.0.1:{refused_port}/pms'\n")

    result = cli("--env-file", str(env_file), "top", "--json", "--broadcast-timeout", "0.5", "--timeout", "1")

    snap = json.loads(result.stdout)
    assert result.exit_code == 0
    assert snap["syncs"]["error"].startswith("database unreachable (") and "refused" in snap["syncs"]["error"]
    assert snap["queues"]["error"] is None and snap["workers"]["error"] is None
    assert {p["platform"]: p["breaker"]["state"] for p in snap["platforms"]["items"]}["airbnb"] == "open"
    assert snap["platforms"]["rate_limit_error"].startswith("database unreachable (")


# --- the live view in a pseudo-terminal ------------------------------------------------------------------------


def _spawn_top(env_file: str, interval: str = "0.3", *extra: str, size: tuple[int, int] = (40, 160)):
    """``pmsops top`` as a child on a pseudo-terminal of ``size`` (rows, columns; 40x160); returns (pid, master fd)."""
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty, its size 40x160
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}  # pytest's COLUMNS would win over the pty
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        from terminal import as_a_shell_starts_a_job

        as_a_shell_starts_a_job()
        os.execve(
            sys.executable,
            [sys.executable, "-m", "pmsops", "--env-file", env_file, "top", "--interval", interval, "--broadcast-timeout", "0.3", *extra],
            env,
        )
    return pid, fd


def _read_until(fd: int, done, timeout: float) -> bytes:
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(seen):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def _reap(pid: int, fd: int) -> None:
    """The child gone (killed if it is still there) and its pty closed: what every pty test ends with."""
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    os.close(fd)


def _exit_code(pid: int, fd: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _read_until(fd, lambda _: False, 0.05)  # keep draining so the child never blocks on a full pty
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
    return None


@pytest.mark.parametrize("key, how", [(b"q", "q"), (b"\x03", "Ctrl-C")])
def test_top_redraws_in_a_terminal_and_quits_on_q_and_ctrl_c(outage, key, how):
    pid, fd = _spawn_top(outage.env_file)
    try:
        # Two frames: the header (with its UTC time) is drawn once per refresh.
        seen = _read_until(fd, lambda s: len(FRAME.findall(s)) >= 2, 20)
        assert len(FRAME.findall(seen)) >= 2, seen[-2000:].decode(errors="replace")
        assert b"\x1b[?1049h" in seen  # the alternate screen
        screen = ANSI.sub(b"", seen).decode(errors="replace")
        assert "half-open in" in screen, screen
        os.write(fd, key)
        code = _exit_code(pid, fd, 5)
    finally:
        _reap(pid, fd)
    assert code == 0, f"top did not quit on {how}"


def test_q_quits_at_once_while_a_refresh_waits_on_a_black_holed_database(outage, black_hole_listener, tmp_path):
    env_file = tmp_path / "db-black-holed.env"
    port = black_hole_listener.port
    env_file.write_text(Path(outage.env_file).read_text() + f"export DATABASE_URL='postgresql://pms_app:x@127.0.0.1:{port}/pms'\n")
    pid, fd = _spawn_top(str(env_file), "0.3", "--timeout", "20")
    try:
        seen = _read_until(fd, lambda s: b"collecting the first snapshot" in s, 20)
        assert b"collecting the first snapshot" in seen
        deadline = time.monotonic() + 20
        while black_hole_listener.accepted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert black_hole_listener.accepted > 0, "top's refresh never connected to the database"
        asked = time.monotonic()
        os.write(fd, b"q")
        code = _exit_code(pid, fd, 5)
        took = time.monotonic() - asked
    finally:
        _reap(pid, fd)
    assert code == 0
    assert took < 2.0, f"quitting took {took:.1f} s"


@pytest.mark.parametrize(
    "forged",
    [{"state": "open", "opened_at": "soon", "failures": "0"}, {"state": "closed", "failures": "lots"}, {"state": "\x1b[2Jbogus", "failures": "1"}],
    ids=["opened-at-text", "failures-text", "unknown-state"],
)
def test_a_forged_breaker_hash_makes_its_row_unreadable_never_a_failed_refresh(cli, outage, forged):
    """Broker data is outside data (#23 item 4): one corrupt field crashed top --once and --json with ValueError."""
    from observe_stack import _redis

    from pmsops.envfile import load_env_file

    client = _redis(load_env_file(outage.env_file).values)
    client.delete("pmsops:circuit:expedia")
    client.hset("pmsops:circuit:expedia", mapping=forged)
    try:
        snap = cli("--env-file", outage.env_file, "top", "--json", "--broadcast-timeout", "0.5")
        once = cli("--env-file", outage.env_file, "top", "--once", "--broadcast-timeout", "0.5", env={"COLUMNS": "160"})
    finally:
        client.delete("pmsops:circuit:expedia")

    assert (snap.exit_code, once.exit_code) == (0, 0), snap.output + once.output
    breakers = {p["platform"]: p["breaker"]["state"] for p in json.loads(snap.stdout)["platforms"]["items"]}
    assert (breakers["expedia"], breakers["airbnb"]) == ("unreadable", "open")
    assert "unreadable (corrupt breaker state in Redis)" in once.stdout and "\x1b[2J" not in once.stdout


# --- 80x24 first (#24 item 4) --------------------------------------------------------------------------------------

TITLES = ("Workers", "Queues", "Active tasks", "Platforms", "Syncs", "Trend")


def test_at_80x24_every_section_five_syncs_the_quit_hint_and_the_newest_bins_fit_the_screen(outage):
    """The wide layout cut the Syncs panel to its header, truncated every column and the newest sparkline bin, and
    never showed the quit hint at 80x24. Rendered for a terminal of that size from the outage's real snapshot."""
    from rich.console import Console

    from pmsops.observe.snapshot import Options, collect_once
    from pmsops.observe.top import render, sparkline

    snapshot = collect_once(Options(broker_url=outage.env["CELERY_BROKER_URL"], database_url=outage.env["DATABASE_URL"], broadcast_timeout=0.5))
    console = Console(width=80, height=24, record=True, force_terminal=True, color_system=None)
    console.print(render(snapshot, 2.0, 80, 24))
    lines = console.export_text().rstrip("\n").split("\n")
    assert (len(lines) <= 24, max(len(line) for line in lines) <= 80) == (True, True), lines
    assert "q quits" in lines[0]
    assert [t for t in TITLES if not any(line.startswith(t) for line in lines)] == []
    syncs = lines.index(next(line for line in lines if line.startswith("Syncs"))) + 1
    trend = lines.index(next(line for line in lines if line.startswith("Trend")))
    assert trend - syncs >= 5, lines
    airbnb = snapshot["syncs"]["per_platform"]["airbnb"]
    assert next(line for line in lines[trend:] if line.strip().startswith("airbnb")).rstrip().endswith(sparkline(airbnb["spark_failed"])[-1])


def test_the_live_screen_at_80x24_shows_the_quit_hint_and_every_section(outage):
    pid, fd = _spawn_top(outage.env_file, size=(24, 80))
    try:
        seen = _read_until(fd, lambda s: b"Trend" in s and b"q quits" in s, 20)
        os.write(fd, b"q")
        code = _exit_code(pid, fd, 5)
    finally:
        _reap(pid, fd)
    screen = ANSI.sub(b"", seen).decode(errors="replace")
    assert [t for t in ("q quits", *TITLES) if t not in screen] == [] and code == 0, screen[-2000:]


def test_a_broker_url_its_client_would_misread_fails_that_part_named_and_the_syncs_are_still_watched(cli, outage):
    """#24 item 2 for top: a raw '#' in REDIS_URL was exit 2 before anything was watched."""
    env = {"REDIS_URL": "redis://:Summer2024#pass@127.0.0.1:6379/0", "DATABASE_URL": outage.env["DATABASE_URL"], "COLUMNS": "160"}
    once = cli("top", "--once", env=env)
    as_json = cli("top", "--json", env=env)
    snap = json.loads(as_json.stdout)
    assert (once.exit_code, as_json.exit_code) == (1, 1)
    assert snap["unusable"]["broker"].startswith("REDIS_URL: the password contains raw '#'")
    assert snap["workers"]["error"] == snap["unusable"]["broker"] and snap["syncs"]["error"] is None
    assert "Summer2024" not in once.output + as_json.output
