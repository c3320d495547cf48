"""check db: a private PostgreSQL cluster with scram-sha-256 and a special-character password."""

import time
from urllib.parse import quote

from conftest import PG_PASSWORD


def test_database_answers_with_version_and_latency(cli, postgres):
    result = cli("check", "db", "--url", postgres.url)
    assert result.exit_code == 0, result.output
    assert "PostgreSQL" in result.stdout and "SELECT 1 in" in result.stdout


def test_sqlalchemy_style_url_is_normalised_with_a_note(cli, postgres):
    url = postgres.url.replace("postgresql://", "postgresql+asyncpg://")
    result = cli("check", "db", "--url", url)
    assert result.exit_code == 0, result.output
    assert "normalised postgresql+asyncpg://" in result.stdout


def test_postgres_scheme_is_accepted(cli, postgres):
    result = cli("check", "db", "--url", postgres.url.replace("postgresql://", "postgres://"))
    assert result.exit_code == 0, result.output


def test_wrong_database_password_is_named_authentication(cli, postgres):
    url = f"postgresql://{quote(postgres.user)}:wrong@127.0.0.1:{postgres.port}/{postgres.database}"
    result = cli("check", "db", "--url", url)
    assert result.exit_code == 1
    assert "authentication failed" in result.stdout


def test_refused_database_port_is_named(cli, refused_port):
    result = cli("check", "db", "--url", f"postgresql://u:p@127.0.0.1:{refused_port}/db")
    assert result.exit_code == 1
    assert "connection refused" in result.stdout


def test_black_holed_database_fails_within_timeout_not_asyncpgs_60_seconds(cli, black_hole):
    started = time.monotonic()
    result = cli("check", "db", "--url", f"postgresql://u:p@127.0.0.1:{black_hole}/db", "--timeout", "1")
    assert result.exit_code == 1
    assert time.monotonic() - started < 2.0
    assert "within 1 s" in result.stdout


def test_unresolvable_supabase_db_points_at_the_supabase_network(cli):
    result = cli("check", "db", "--url", "postgresql://u:p@supabase-db.invalid:5432/postgres")
    assert result.exit_code == 1
    assert "Supabase network" in result.stdout


def test_unknown_database_scheme_is_usage_error(cli):
    result = cli("check", "db", "--url", "mysql://u:p@host/db")
    assert result.exit_code == 2
    assert "unknown database scheme" in result.stderr


def test_database_password_never_appears(cli, postgres):
    result = cli("check", "db", "--url", postgres.url, "--json")
    assert PG_PASSWORD not in result.output
    assert quote(PG_PASSWORD, safe="") not in result.output


def test_unparseable_database_url_is_bad_input_without_password_fragments(cli):
    result = cli("check", "db", "--url", "postgresql://u:secr/et@db:5432/pms")
    assert result.exit_code == 2
    assert "password contains raw '/' (encode as %2F)" in result.stderr and "secr" not in result.stderr


class SlowLink:
    """A real TCP relay on loopback in front of PostgreSQL that holds every reply ``delay`` seconds: a slow but
    healthy database (a distant region, a loaded pooler)."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        import socket
        import threading

        self.delay, self.upstream_port = delay, upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.delay), daemon=True).start()

    @staticmethod
    def _pump(source, target, delay: float) -> None:
        try:
            while chunk := source.recv(65536):
                time.sleep(delay)  # the fault itself: every reply is this late
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            import socket

            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)  # a FIN now, and the other pump's recv wakes up
                except OSError:
                    pass
                end.close()

    def close(self) -> None:
        self.server.close()


def test_a_slow_but_healthy_database_is_slow_not_black_holed(cli, postgres):
    """#28: --timeout bounds each network call; a check of two connects (~1 s each here) and ~10 statements
    (0.2 s each), every call well within 2 s, was cut at 2.5 s and called black-holed ("check abandoned")."""
    from urllib.parse import urlsplit

    real = urlsplit(postgres.url)
    link = SlowLink(real.port, 0.2)
    try:
        result = cli("check", "db", "--url", postgres.url.replace(f":{real.port}/", f":{link.port}/"), "--timeout", "2")
    finally:
        link.close()
    assert (result.exit_code, "abandoned" in result.stdout, "SELECT 1 in" in result.stdout) == (0, False, True), result.output
