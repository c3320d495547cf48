"""The private parts of libraries pmsops relies on, in one module (#28): each is named here, its library is pinned
to its minor version in pyproject.toml, and ``tests/test_library_internals.py`` fails when one changes, so a release
that renames one fails the suite (``make test-latest`` runs it on the newest versions the ranges allow) instead of
a command at 3 a.m. (kombu's Redis transport is subclassed in :mod:`pmsops.sync.broker`, with its own tests.)

- asyncpg ``connect_utils._parse_connect_dsn_and_args``: asyncpg's DSN reading without connecting (what the database
  URL lint compares the author's split with);
- asyncpg ``Connection._transport``: the TLS version the client negotiated (``check db`` reports it);
- Typer's vendored click (``typer._click``): its exceptions are not the ``click`` package's, so a bad option is a
  usage error, not a crash report.
"""

from __future__ import annotations

from typing import Any


def asyncpg_parse(dsn: str):
    """asyncpg's own DSN reading, without connecting: (addresses, connection parameters)."""
    from asyncpg import connect_utils

    return connect_utils._parse_connect_dsn_and_args(
        dsn=dsn,
        host=None,
        port=None,
        user=None,
        password=None,
        passfile=None,
        database=None,
        ssl=None,
        service=None,
        servicefile=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
    )


def asyncpg_tls_version(conn: Any) -> str | None:
    """The TLS version an asyncpg connection negotiated (None without TLS)."""
    transport = getattr(conn, "_transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.version() if ssl_object is not None else None


def vendored_click_exception() -> type | None:
    """The ClickException of the click Typer vendors (``typer._click``); None on a Typer that uses click itself."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        return None
    return ClickException
