"""pmsops in a real pseudo-terminal, as an operator sees it at 3 a.m. (80 and 120 columns).

Each command runs as a child process whose controlling terminal is a pty of the
given size; what it writes is recorded with the time it arrived. Speed is not
asserted here (benchmarks measure it): what is asserted is order — a result is on
the screen while a black-holed check is still running — plus Ctrl-C, line widths,
whole words, hidden prompts and exit codes.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>78]")
WIDTHS = [80, 120]
SPINNER = "⠋|⠙|⠹|⠸|⠼|⠴|⠦|⠧|⠇|⠏"


@dataclass
class Tty:
    """A child on a pty: ``chunks`` are (seconds since start, text) as they arrived."""

    pid: int
    fd: int
    started: float
    chunks: list[tuple[float, str]] = field(default_factory=list)
    code: int | None = None

    @property
    def raw(self) -> str:
        return "".join(text for _, text in self.chunks)

    @property
    def text(self) -> str:
        """What was written, escapes removed, ``\\r\\n`` as newlines."""
        return ANSI.sub("", self.raw).replace("\r\n", "\n")

    def lines(self) -> list[str]:
        """Physical lines as a terminal shows them (a carriage return starts the line anew)."""
        out = []
        for line in self.text.split("\n"):
            out.append(line.split("\r")[-1] if "\r" in line else line)
        return out

    def when(self, pattern: str) -> float | None:
        """Seconds after the start when ``pattern`` (a regex) was first on the screen."""
        seen = ""
        for at, text in self.chunks:
            seen += text
            if re.search(pattern, ANSI.sub("", seen)):
                return at
        return None

    def between(self, first: str, then: str) -> str:
        """What was written after ``first`` was on the screen and before ``then`` was (escapes removed).

        Order, not time: on a loaded machine start-up alone can take seconds, so "on the
        screen while X still ran" is asserted as X's running row being redrawn in between.
        """
        seen, out, started = "", "", False
        for _, text in self.chunks:
            seen += text
            plain = ANSI.sub("", seen)
            if started:
                if re.search(then, plain):
                    return out
                out += ANSI.sub("", text)
            elif re.search(first, plain):
                started = True
                if re.search(then, plain):
                    return ""
        return out

    def read(self, until=lambda text: False, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(ANSI.sub("", self.raw)):
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.chunks.append((time.monotonic() - self.started, data.decode("utf-8", errors="replace")))
            elif self.code is None:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.code = os.waitstatus_to_exitcode(status)

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.code is None and time.monotonic() < deadline:
            self.read(timeout=0.1)
            if self.code is None:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.code = os.waitstatus_to_exitcode(status)
        self.read(timeout=0.2)  # what was still buffered in the pty
        assert self.code is not None, f"still running after {timeout} s:\n{self.text[-2000:]}"
        return self.code

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        if self.code is None:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


def spawn(*args: str, columns: int = 80, rows: int = 40, env: dict[str, str] | None = None) -> Tty:
    """``python -m pmsops ARGS`` with a pty of ``columns`` x ``rows`` as its terminal (stdin, stdout, stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    child_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = SRC + os.pathsep + child_env.get("PYTHONPATH", "")
    child_env["TERM"] = "xterm-256color"
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        from terminal import as_a_shell_starts_a_job

        as_a_shell_starts_a_job()
        os.execve(sys.executable, [sys.executable, "-m", "pmsops", *args], child_env)
    return Tty(pid, fd, started)


def run(*args: str, columns: int = 80, env: dict[str, str] | None = None, timeout: float = 60.0) -> Tty:
    tty = spawn(*args, columns=columns, env=env)
    try:
        tty.wait(timeout)
    finally:
        tty.close()
    return tty


def assert_fits(tty: Tty, columns: int) -> None:
    too_long = [line for line in tty.lines() if len(line) > columns]
    assert not too_long, f"lines longer than {columns} columns: {too_long}"


def assert_whole_words(tty: Tty, texts: list[str], columns: int) -> None:
    """Every word of ``texts`` that fits on a line appears whole on the screen (no word cut by wrapping)."""
    tokens = set()
    for line in tty.lines():
        tokens.update(line.split())
    cut = [word for text in texts for word in text.split() if len(word) < columns - 8 and word not in tokens]
    assert not cut, f"words broken across lines: {cut[:10]}"


@pytest.fixture
def black_holed_db_env(redis_server, black_hole):
    """Redis answers at once, the database never does: doctor has one fast and one slow check."""
    return {"REDIS_URL": redis_server.url, "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{black_hole}/db"}


# --- results as they happen ---------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_doctor_shows_redis_while_the_black_holed_database_is_still_running(black_holed_db_env, columns):
    tty = run("doctor", "--timeout", "3", columns=columns, env=black_holed_db_env)

    assert tty.code == 1, tty.text
    first = tty.when(r"✓ redis\s")
    db_failed = tty.when(r"✗ db FAILED")
    assert first is not None and db_failed is not None, tty.text
    assert first < db_failed, (first, db_failed)
    # on the screen while the database check still ran: its row was redrawn, running, in between
    assert re.search(rf"({SPINNER}) db\s+\d", tty.between(r"✓ redis\s", r"✗ db FAILED")), tty.text
    assert tty.when(SPINNER) is not None  # a spinner for what was running
    assert re.search(r"db\s+\d", tty.text)  # with its elapsed time
    summary = re.search(r"2 ok, 1 warning, 2 failed, 1 skipped in \d\.\d s: db, celery, redis-url consistency\s*$", tty.text)
    assert summary, tty.text[-500:]  # the final summary line, wrapped at word boundaries at 80 columns
    assert_fits(tty, columns)


def test_doctor_piped_prints_plain_lines_without_spinner_or_escapes(black_holed_db_env, cli):
    import subprocess

    env = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS",)}, **black_holed_db_env, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-m", "pmsops", "doctor", "--timeout", "1"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "\x1b" not in done.stdout and "⠋" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == "pmsops doctor"
    names = [line.split()[1] for line in lines if line[:1] in "✓✗!-"]
    assert names == ["redis-url", "redis-url", "redis", "db", "celery", "health"]  # fixed order, whatever finished first
    assert lines[-1].startswith("2 ok, 1 warning, 2 failed, 1 skipped in ")


@pytest.mark.parametrize("columns", WIDTHS)
def test_ctrl_c_keeps_the_results_found_so_far_and_exits_130(black_holed_db_env, columns):
    tty = spawn("doctor", "--timeout", "20", columns=columns, env=black_holed_db_env)
    try:
        running = re.compile(r"db\s+(\d\.\d s|[5-9]\d\d ms)")  # the database check has been running half a second
        tty.read(until=lambda text: "✓ redis " in text and running.search(text) is not None, timeout=20)
        assert "✓ redis " in tty.text and running.search(tty.text), tty.text
        tty.send(b"\x03")
        code = tty.wait(10)
    finally:
        tty.close()

    assert code == 130
    flat = " ".join(tty.text.split())
    expected = r"interrupted: 2 ok, 1 warning in (\d+ ms|\d\.\d s): redis-url consistency; not finished: db, celery, health$"
    assert re.search(expected, flat), tty.text[-600:]
    assert "✓ redis " in tty.text  # what was found stays on the screen
    assert "Traceback" not in tty.text


def _deletes(url: str) -> int:
    """How many DELs the Redis server has run: the redis check's last step deletes its own key."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return int(client.info("commandstats").get("cmdstat_del", {}).get("calls", 0))
    finally:
        client.close()


@pytest.fixture
def own_redis_and_black_holed_db(black_hole):
    """A Redis only this test's doctor talks to: its DEL count is that doctor's (the session's Redis serves workers too)."""
    from conftest import REDIS_PASSWORD
    from pmsops.sandbox.servers import RedisServer

    server = RedisServer(REDIS_PASSWORD).start()
    yield {"REDIS_URL": server.url, "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{black_hole}/db"}
    server.stop()


def test_ctrl_c_with_json_still_writes_one_report_with_what_was_found(own_redis_and_black_holed_db, tmp_path):
    env = own_redis_and_black_holed_db
    url = env["REDIS_URL"]
    before = _deletes(url)
    junit = tmp_path / "doctor.xml"
    tty = spawn("doctor", "--timeout", "20", "--json", "--junit", str(junit), env=env)
    try:
        # the JSON comes only at the end: Ctrl-C once the redis check is done (its DEL), while the database check runs
        deadline = time.monotonic() + 30
        while _deletes(url) == before and time.monotonic() < deadline:
            tty.read(until=lambda text: False, timeout=0.1)
        tty.read(until=lambda text: False, timeout=0.5)  # the check's result, from its thread to the collector
        tty.send(b"\x03")
        code = tty.wait(10)
    finally:
        tty.close()
    assert code == 130
    report = json.loads(tty.text[tty.text.index("{") : tty.text.rindex("}") + 1])
    assert report["exit_code"] == 130 and report["interrupted"] is True
    assert (report["status"], report["error"]["type"]) == ("fail", "interrupted")  # a gate on .status=="ok" must not pass
    assert "db" in report["not_finished"]
    assert [r["name"] for r in report["results"] if r["name"] == "redis"] == ["redis"]
    suite = ElementTree.parse(junit).getroot()
    unfinished = {case.get("name") for case in suite.iter("testcase") if case.find("error") is not None}
    assert "db" in unfinished and int(suite.get("errors")) == len(unfinished) == len(report["not_finished"])


# --- smoke: time to a verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_smoke_streams_each_step_before_the_sync_finishes(sandbox, columns):
    tty = run("--env-file", str(sandbox.env_path), "smoke", columns=columns)

    assert tty.code == 0, tty.text
    first = tty.when(r"✓ 1 load environment")
    trigger = tty.when(r"✓ 5 trigger sync")
    last = tty.when(r"✓ 6 sync logs")
    assert first is not None and trigger is not None and last is not None, tty.text
    assert first < last and trigger <= last  # printed in order, each as it ended (the first before the sync was final)
    assert tty.text.strip().splitlines()[-1].startswith("6 ok in ")
    assert_fits(tty, columns)


def test_smoke_no_trigger_runs_the_read_only_steps(sandbox):
    tty = run("smoke", "--no-trigger", "--env-file", str(sandbox.env_path), columns=120)
    assert tty.code == 0, tty.text
    assert "✓ 4 channel connection" in tty.text
    assert "- 5 trigger sync skipped  not triggered (--no-trigger" in tty.text
    assert tty.text.strip().splitlines()[-1].startswith("4 ok, 2 skipped in ")


def test_smoke_with_the_worker_stopped_names_the_worker_at_step_3(sandbox):
    sandbox.stop("worker")
    try:
        tty = run("smoke", "--env-file", str(sandbox.env_path), columns=80, timeout=40)
    finally:
        sandbox.start("worker")
    assert tty.code == 1, tty.text
    assert "✗ 3 health FAILED" in tty.text and "celery down" in tty.text
    assert "not triggered: step 3 says celery down" in " ".join(tty.text.split())
    last = tty.text.strip().splitlines()[-1]
    assert last.startswith("3 ok, 1 failed, 2 skipped in ") and last.endswith(": health")
    assert_fits(tty, 80)


# --- reading comfort -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", WIDTHS)
def test_long_hints_wrap_at_the_terminal_width_without_breaking_words(columns, cli):
    tty = run("doctor", columns=columns)
    assert tty.code == 2  # nothing configured: nothing checked is not success
    assert_fits(tty, columns)
    report = cli("doctor", "--json")
    texts = [r["summary"] for r in json.loads(report.stdout)["results"]] + [r["hint"] for r in json.loads(report.stdout)["results"] if r["hint"]]
    assert_whole_words(tty, texts, columns)
    assert " ".join(tty.text.split()).endswith("set the variables named above, or pass --env-file FILE or --context NAME")


def test_explain_coolify_url_wraps_at_80_columns(cli):
    tty = run("explain", "coolify-url", columns=80)
    assert tty.code == 0
    assert_fits(tty, 80)
    assert_whole_words(tty, [cli("explain", "coolify-url").stdout], 80)
    assert "COOLIFY_URL=https://coolify.example.com" in tty.text


def test_requirepass_typed_at_a_terminal_is_not_echoed(redis_server):
    secret = "typed-at-the-terminal-42"
    tty = spawn("compare-password-hash", "--url", "redis://:other@127.0.0.1:6379/0", "--requirepass-stdin", columns=80)
    try:
        tty.read(until=lambda text: "requirepass" in text.lower(), timeout=15)
        assert "input hidden" in tty.text, tty.text
        tty.send(secret.encode() + b"\r")
        code = tty.wait(15)
    finally:
        tty.close()
    assert secret not in tty.raw
    assert code == 1, tty.text


# --- sync reap asks first on a terminal -----------------------------------------------------------------------


def _stale_log(sync_db) -> tuple[str, str]:
    import uuid

    from sync_helpers import run as run_sql
    from sync_helpers import seed_connection

    ids = seed_connection(sync_db)
    task = f"stale-{uuid.uuid4()}"
    insert = (
        "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at, due_at) "
        "VALUES ($1::uuid, 'pricing_update', 'running', $2, now() - interval '90 minutes', now() - interval '89 minutes')"
    )
    run_sql(sync_db, lambda c: c.execute(insert, ids["connection_id"], task))
    return ids["connection_id"], task


@pytest.mark.parametrize("answer, code, status", [(b"n", 1, "running"), (b"y", 0, "failed")])
def test_sync_reap_on_a_terminal_lists_the_logs_and_asks_first(sync_db, answer, code, status):
    from sync_helpers import logs_for

    cid, task = _stale_log(sync_db)
    tty = spawn("sync", "reap", "--older-than", "60m", "--database-url", sync_db, "--connection", cid, columns=120)
    try:
        tty.read(until=lambda text: "[y/N]" in text, timeout=20)
        assert "would mark 1 stale log(s) failed" in tty.text and "Mark these 1 log(s) failed? [y/N]" in tty.text, tty.text
        assert logs_for(sync_db, [task])[0]["status"] == "running"  # nothing changed while it asks
        tty.send(answer + b"\r")
        assert tty.wait(20) == code
    finally:
        tty.close()
    assert logs_for(sync_db, [task])[0]["status"] == status


def test_sync_trigger_wait_piped_never_repeats_a_progress_line(sandbox):
    import subprocess

    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("COLUMNS", None)
    listed = subprocess.run(
        [sys.executable, "-m", "pmsops", "--env-file", str(sandbox.env_path), "connections", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    cid = [c for c in json.loads(listed.stdout)["results"][0]["details"]["connections"] if c["status"] == "active"][0]["id"]
    done = subprocess.run(
        [sys.executable, "-m", "pmsops", "--env-file", str(sandbox.env_path), "sync", "trigger", cid, "--type", "full", "--wait", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("    … ")]
    assert progress, done.stderr  # what each operation did, as it changed
    assert len(progress) == len(set(progress)), progress
    assert done.stdout.strip().splitlines()[-1].startswith("2 ok in ")
