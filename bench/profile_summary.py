"""Summarise a py-spy ``--format raw`` (folded stacks) profile: where the worker's samples went.

``python bench/profile_summary.py bench/results/sync-worker.folded`` prints the top
functions by inclusive share (a frame counted once per stack) and by own (leaf) share,
idle threads (waiting in a poll, a lock or a queue) left out.
"""

from __future__ import annotations

import sys
from collections import Counter

IDLE = (
    "select (selectors.py",
    "poll (selectors.py",
    "wait (threading.py",
    "_wait_for_tstate_lock",
    "get (queue.py",
    "epoll",
    "_run_once (asyncio/base_events.py",
    "sleep (",
    "accept (",
    "recv (",
    "_read_from_self",
)
"""Leaf frames of a thread that is waiting, not working (py-spy --gil samples only the thread holding the GIL)."""


def parse(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _short(frame: str) -> str:
    return frame.replace("/work/main/.venv/lib/python3.11/site-packages/", "").replace(".py:", ":")


def summarise(text: str, top: int = 25) -> str:
    busy = [(frames, n) for frames, n in parse(text) if not any(mark in frames[-1] for mark in IDLE)]
    total = sum(n for _, n in busy) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in busy:
        for frame in set(f.rsplit(":", 1)[0] if ":" in f else f for f in frames[1:]):
            inclusive[frame] += n
        own[frames[-1].rsplit(":", 1)[0]] += n
    lines = [f"busy samples: {total} (idle waits left out)", "", "inclusive share (top %d):" % top]
    lines += [f"  {100 * n / total:5.1f} %  {_short(f)}" for f, n in inclusive.most_common(top)]
    lines += ["", "own share (top %d):" % top]
    lines += [f"  {100 * n / total:5.1f} %  {_short(f)}" for f, n in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(open(sys.argv[1]).read()))
