"""``python -m pmsops.sandbox.api --fd N``: uvicorn serving the sandbox API on a listening socket the parent bound.

uvicorn's own ``--fd`` wraps the descriptor as a Unix socket; ``socket.socket(fileno=…)`` reads the real family
(TCP), so client addresses stay right. The parent binds the port (:func:`pmsops.sandbox.processes.listening_socket`),
so the API cannot lose it to another process between choosing it and serving on it.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pmsops.sandbox.api", description="The sandbox API (uvicorn) on an inherited socket")
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening TCP socket")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    import uvicorn

    from pmsops.sandbox.processes import inherited_socket

    server = uvicorn.Server(uvicorn.Config("pmsops.sandbox.api:app", log_level=args.log_level))
    try:
        server.run(sockets=[inherited_socket(args.fd)])
    except KeyboardInterrupt:  # Ctrl-C: a quiet stop, as `uvicorn` itself does
        pass
    if not server.started:  # as `uvicorn`: the app never came up (its lifespan failed)
        sys.exit(3)


if __name__ == "__main__":
    main()
