"""A second local user for the attacks that need one (created with useradd; root only).

Attacks are planted with ``runuser`` and a shell (the test's Python lives under
/root, which the second user cannot enter); code that must run as that user in
Python runs in a forked child that drops to its uid.
"""

from __future__ import annotations

import os
import pickle
import pwd
import subprocess

import pytest

INTRUDER = "pmsops-intruder"


def intruder() -> pwd.struct_passwd:
    """The second user, created on first use; skips when we cannot create users."""
    if os.geteuid() != 0:
        pytest.skip("this attack needs a second local user, and only root can create one (useradd)")
    try:
        return pwd.getpwnam(INTRUDER)
    except KeyError:
        pass
    import fcntl
    import tempfile

    # parallel test workers (pytest-xdist) may all ask at once: one useradd at a time, the others then find the user
    lock_path = os.path.join(tempfile.gettempdir(), f"{INTRUDER}.lock")
    with os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(INTRUDER)
        except KeyError:
            pass
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", INTRUDER],
            capture_output=True,
            text=True,
            timeout=30,
        )
    try:
        return pwd.getpwnam(INTRUDER)
    except KeyError:
        pytest.fail(f"useradd {INTRUDER} failed: {done.stderr.strip()}")


def as_intruder(user: pwd.struct_passwd, script: str) -> None:
    """Run a shell script as the second user (what they would type)."""
    subprocess.run(
        ["runuser", "-u", user.pw_name, "--", "/bin/sh", "-c", script], check=True, timeout=30, cwd="/", stdin=subprocess.DEVNULL, capture_output=True
    )


def call_as(user: pwd.struct_passwd, function, *args):
    """``function(*args)`` in a forked child running as ``user``; returns its result or re-raises its exception."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            payload = ("ok", function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent
            payload = ("raised", exc)
        try:
            data = pickle.dumps(payload)
        except Exception as exc:  # noqa: BLE001
            data = pickle.dumps(("raised", RuntimeError(f"unpicklable result: {exc}")))
        with os.fdopen(write, "wb") as pipe:
            pipe.write(data)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "raised":
        raise value
    return value


def run_bounded(*args: str, timeout: float = 30, memory: int = 1 << 30) -> subprocess.CompletedProcess:
    """``pmsops ARGS`` in a subprocess with at most ``memory`` bytes of address space and a timeout.

    For hostile input (``/dev/zero``, huge files): code that reads it whole dies of
    MemoryError instead of taking the shared test machine down with it.
    """
    import resource
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-P", "-m", "pmsops", *args], capture_output=True, text=True, timeout=timeout, preexec_fn=limit, stdin=subprocess.DEVNULL
    )
