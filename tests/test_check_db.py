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
