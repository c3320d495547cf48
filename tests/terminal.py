"""What a shell does for a job it starts in a terminal, for the tests that run pmsops on a pty."""

from __future__ import annotations

import signal


def as_a_shell_starts_a_job() -> None:
    """In the forked child, before exec: default signal dispositions and no blocked signals.

    A shell starts a foreground job that way; a forked test process instead passes on whatever
    the test run changed (an embedded worker, a library's handler, a blocked mask), and Python
    turns Ctrl-C into KeyboardInterrupt only when SIGINT is neither ignored nor blocked at start."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
