"""``python -m pmsops.worker.alive``: the cheapest HEALTHCHECK (``worker-check --liveness`` without the CLI).

Same check as ``pmsops worker-check --liveness`` (:func:`pmsops.beacon.read_liveness`),
but it imports only the standard library's json/os/stat/time: no Typer, Rich, Celery,
kombu or redis-py. One line on stdout, exit 0 alive, 1 not alive, 2 bad input.
Usage: ``python -m pmsops.worker.alive [--max-age SECONDS]``.
"""

from __future__ import annotations

import math
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from pmsops.beacon import beacon_interval, beacon_path, read_liveness
    from pmsops.visible import visible

    args = list(sys.argv[1:] if argv is None else argv)
    max_age = 3 * (beacon_interval(os.environ) or 10.0)
    if args:
        try:
            if len(args) != 2 or args[0] != "--max-age":
                raise ValueError
            max_age = float(args[1])
            if not math.isfinite(max_age) or max_age <= 0:
                raise ValueError
        except ValueError:
            sys.stderr.write("x error: usage: python -m pmsops.worker.alive [--max-age SECONDS] (a positive number)\n")
            return 2
    found = read_liveness(beacon_path(os.environ), max_age)
    line = ("ok   liveness  " if found.alive else "FAIL liveness  ") + found.summary + ("" if found.alive else f"  -> {found.hint}")
    sys.stdout.write(visible(line, one_line=True) + "\n")  # the beacon file is written by another process
    return 0 if found.alive else 1


if __name__ == "__main__":
    sys.exit(main())
