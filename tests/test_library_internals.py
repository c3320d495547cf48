"""Private library parts live in ``pmsops.internals`` (kombu's in ``pmsops.sync.broker``), pinned, and fail here when
they change (#28): a release that renames one fails ``make test-latest``, not a command in production."""

from __future__ import annotations

import inspect
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "pmsops"
PRIVATE = ("_parse_connect_dsn_and_args", '"_transport"', "conn._transport", "from typer._click", "import typer._click", "connect_utils.")


def test_asyncpg_is_the_minor_version_the_internals_were_written_for_and_its_dsn_reader_takes_what_we_pass():
    import asyncpg
    from asyncpg import connect_utils

    parameters = inspect.signature(connect_utils._parse_connect_dsn_and_args).parameters
    wanted = {"dsn", "host", "port", "user", "password", "passfile", "database", "ssl", "service", "servicefile", "direct_tls"}
    wanted |= {"server_settings", "target_session_attrs", "krbsrvname", "gsslib"}
    assert (asyncpg.__version__.split(".")[:2], sorted(wanted - set(parameters))) == (["0", "32"], [])


def test_an_asyncpg_connection_keeps_its_transport_where_the_tls_version_is_read(postgres):
    import asyncio

    from pmsops.database import connect
    from pmsops.internals import asyncpg_tls_version

    async def go():
        conn = await connect(postgres.url, 5)
        try:
            return getattr(conn, "_transport", None) is not None, asyncpg_tls_version(conn)
        finally:
            await conn.close()

    assert asyncio.run(go()) == (True, None)  # the test cluster speaks no TLS: a transport, no TLS version


def test_typer_is_the_minor_version_pinned_and_a_bad_option_it_raises_is_a_caught_usage_error():
    """Typer 0.20 raises click's own exceptions; a Typer that vendors click (``typer._click``) raises its copy's:
    either way the class must be one the CLI catches as a usage error, or a typo becomes a crash report."""
    import typer

    from pmsops.cli.main import _click_exception_types

    app = typer.Typer()

    @app.command()
    def one(flag: bool = False) -> None:
        """A command with one option."""

    @app.command()
    def two() -> None:
        """A second command (a group, as pmsops is)."""

    try:
        app(["one", "--no-such-option"], standalone_mode=False)
        raised = None
    except Exception as exc:  # noqa: BLE001 - the class is what is tested
        raised = exc
    usage, _ = _click_exception_types()
    assert (typer.__version__.split(".")[:2], isinstance(raised, usage)) == (["0", "20"], True)


def test_no_module_but_the_internals_home_reaches_into_asyncpg_or_typer_privates():
    readers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "internals.py" and any(p in path.read_text(encoding="utf-8").replace("pmsops.internals", "") for p in PRIVATE)
    )
    assert readers == []
