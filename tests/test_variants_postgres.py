"""PostgreSQL as production runs it: SSL on (certificates made by the test, a hostssl-only server), PgBouncer in
transaction mode (Supabase's pooler) in front of the test PostgreSQL with the sync library running through it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from conftest import PG_PASSWORD, start_worker, stop_worker, sync_worker_env
from sync_helpers import seed_connection, trigger, wait_final
from variant_servers import PgBouncer, make_certificates, ssl_postgres


@pytest.fixture(scope="module")
def ssl_cluster():
    """A PostgreSQL that accepts TCP connections over SSL only (pg_hba.conf: hostssl), as managed databases do."""
    from pmsops.sandbox.servers import PostgresCluster

    cluster = PostgresCluster(user="pms user", password=PG_PASSWORD, database="pms").start()
    cluster.certs = ssl_postgres(cluster, hostssl_only=True)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def pgbouncer(sync_db, postgres):
    """PgBouncer in transaction mode in front of the session's (migrated) PostgreSQL."""
    bouncer = PgBouncer(postgres.port, postgres.database, postgres.user, postgres.password, pool_mode="transaction", pool_size=4).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def session_bouncer(postgres):
    bouncer = PgBouncer(postgres.port, postgres.database, postgres.user, postgres.password, pool_mode="session", pool_size=2).start()
    yield bouncer
    bouncer.stop()


# --- SSL ---------------------------------------------------------------------------------------------


def test_hostssl_only_server_with_sslmode_disable_names_ssl_not_the_password(cli, ssl_cluster):
    result = cli("check", "db", "--url", ssl_cluster.url + "?sslmode=disable")
    assert result.exit_code == 1
    assert "the server accepts this user only over SSL (pg_hba.conf: hostssl)" in result.stdout
    assert "sslmode=require" in result.stdout
    assert "user or password" not in result.stdout and "authentication failed" not in result.stdout


def test_default_sslmode_uses_ssl_and_says_the_certificate_was_not_verified(cli, ssl_cluster):
    result = cli("check", "db", "--url", ssl_cluster.url, "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok", result.output
    assert found["details"]["ssl"].startswith("TLSv1")
    assert found["details"]["certificate_verified"] is False
    assert "(server certificate not verified)" in found["summary"]


def test_verify_full_with_the_servers_ca_says_verified(cli, ssl_cluster):
    result = cli("check", "db", "--url", ssl_cluster.url + f"?sslmode=verify-full&sslrootcert={ssl_cluster.certs.ca}")
    assert result.exit_code == 0, result.output
    assert "(server certificate verified)" in result.stdout


def test_verify_full_without_a_root_certificate_names_sslrootcert(cli, ssl_cluster, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt, as in a fresh container
    result = cli("check", "db", "--url", ssl_cluster.url + "?sslmode=verify-full")
    assert result.exit_code == 2
    assert "needs a root certificate for sslmode=verify-full" in result.stderr
    assert "sslrootcert=/path/to/ca.pem" in result.stderr and "sslmode=require" in result.stderr
    assert "unexpected error" not in result.output and "ClientConfigurationError" not in result.output


def test_verify_full_with_another_ca_names_the_root_certificate(cli, ssl_cluster):
    other = make_certificates(Path(tempfile.mkdtemp(prefix="pmsops-otherca-")))
    result = cli("check", "db", "--url", ssl_cluster.url + f"?sslmode=verify-full&sslrootcert={other.ca}")
    assert result.exit_code == 1
    assert "the server certificate was not accepted (not signed by the root certificate given)" in result.stdout
    assert "sslrootcert must be the CA" in result.stdout


def test_sslmode_require_against_a_server_without_ssl_names_the_missing_ssl(cli, postgres):
    result = cli("check", "db", "--url", postgres.url + "?sslmode=require")
    assert result.exit_code == 1
    assert "the server does not offer SSL (ssl = off), and the URL demands it" in result.stdout
    assert "sslmode=prefer" in result.stdout
    assert "unexpected error" not in result.stdout


def test_search_path_naming_a_missing_schema_is_a_named_error(cli, postgres):
    result = cli("check", "db", "--url", postgres.url + "?search_path=public,pms_typo")
    assert result.exit_code == 1
    assert "search_path names schema(s) that do not exist: pms_typo" in result.stdout


def test_search_path_of_existing_schemas_passes(cli, postgres):
    result = cli("check", "db", "--url", postgres.url + "?search_path=public", "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok" and found["details"]["search_path"] == "public"


def test_ssl_secrets_never_appear(cli, ssl_cluster):
    from urllib.parse import quote

    result = cli("check", "db", "--url", ssl_cluster.url + "?sslmode=disable", "--json")
    assert PG_PASSWORD not in result.output and quote(PG_PASSWORD, safe="") not in result.output


# --- PgBouncer in transaction mode -------------------------------------------------------------------


def test_check_db_sees_the_transaction_pooler_and_says_what_the_workers_need(cli, pgbouncer, postgres):
    result = cli("check", "db", "--url", pgbouncer.url, "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok", result.output
    assert found["details"]["pooler"] == "transaction"
    assert "transaction pooler in front (workers: no prepared statements)" in found["summary"]
    assert any(n.startswith("what the workers need: no prepared statements") for n in found["notes"])
    assert found["details"]["port_forwarded"] == f"PostgreSQL listens on port {postgres.port}, the URL names {pgbouncer.port}"


def test_pooler_with_one_server_connection_is_detected_without_waiting_for_it(cli, postgres):
    bouncer = PgBouncer(postgres.port, postgres.database, postgres.user, postgres.password, pool_mode="transaction", pool_size=1).start()
    try:
        result = cli("check", "db", "--url", bouncer.url, "--timeout", "3", "--json")
    finally:
        bouncer.stop()
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok", result.output
    assert found["details"]["pooler"] == "transaction"
    assert "one server backend served two client connections" in found["details"]["pooler_evidence"]


def test_check_db_fails_when_the_workers_would_cache_statements_behind_the_pooler(cli, pgbouncer, monkeypatch):
    monkeypatch.setenv("DB_STATEMENT_CACHE_SIZE", "100")
    result = cli("check", "db", "--url", pgbouncer.url)
    assert result.exit_code == 1
    assert "a transaction pooler is in front, and the workers would cache prepared statements (DB_STATEMENT_CACHE_SIZE=100)" in result.stdout


def test_check_db_sees_no_pooler_on_the_server_itself(cli, postgres):
    result = cli("check", "db", "--url", postgres.url, "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok" and found["details"]["pooler"] is None and found["details"]["port_forwarded"] is None


def test_session_pooler_is_not_a_transaction_pooler_but_the_forwarded_port_is_noted(cli, session_bouncer):
    result = cli("check", "db", "--url", session_bouncer.url, "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok" and found["details"]["pooler"] is None
    assert any("something forwards the port" in n for n in found["notes"])


def test_full_syncs_through_pgbouncer_in_transaction_mode_all_succeed_by_default(pgbouncer, redis_server, fake_platform, monkeypatch):
    """Issue #13: behind the pooler 7 of 8 full syncs failed with 'prepared statement "__asyncpg_stmt_…" does not exist'."""
    for name in ("DB_TRANSACTION_POOLER", "DB_STATEMENT_CACHE_SIZE"):
        monkeypatch.delenv(name, raising=False)  # nothing set: the library must be safe by default
    env = sync_worker_env(redis_server, 14, pgbouncer.url, fake_platform.url)
    worker = start_worker(env["CELERY_BROKER_URL"], "pooler@pmsops-variants", app="pmsops.sync.worker:celery_app", concurrency=4, extra_env=env)
    try:
        task_ids = []
        for platform in ("google", "airbnb", "booking_com", "expedia"):
            ids = seed_connection(pgbouncer.url, platform=platform, bookings=[(3, 2)])
            task_ids += trigger(pgbouncer.url, env["CELERY_BROKER_URL"], ids["connection_id"], "full").task_ids
        rows = wait_final(pgbouncer.url, task_ids, timeout=30)
        assert len(rows) == 12
        failed = [(r["operation_type"], r["status"], (r["error"] or "")[:120]) for r in rows if r["status"] != "success"]
        assert failed == [], failed
    finally:
        stop_worker(worker)
