"""Issue #18 / #11: one URL reader whose answer is the client's own (redis-py, kombu, asyncpg).

Each case is one of the disagreements the review found between pmsops and the
clients; the expected reading is checked against the real library first.
"""

from __future__ import annotations

import pytest

from pmsops.errors import UsageError
from pmsops.urlread import asyncpg_parse, mask_url, read_url


def test_raw_at_in_database_password_names_asyncpgs_reading_not_the_supabase_network(cli):

    url = "postgresql://user:p@ss@dbhost.invalid/db"
    addrs, params = asyncpg_parse(url)
    assert (addrs[0][0], params.password) == ("ss@dbhost.invalid", "p")  # what asyncpg really does

    result = cli("check", "db", "--url", url)

    assert result.exit_code == 2
    assert "asyncpg would send a password of 1 character to a host made of a piece of the password (not dbhost.invalid)" in result.stderr
    assert "encode as %40" in result.stderr and "Supabase" not in result.output


@pytest.mark.parametrize("url", ["redis://localhost:6379?db=0", "redis://localhost?db=2&socket_timeout=3", "redis://my %2F host %2B%3D+"])
def test_redis_url_with_query_or_encoded_host_is_no_false_alarm(cli, url):
    result = cli("redis-url", "check", url)

    assert result.exit_code == 0, result.output
    assert "piece of the password" not in result.output and "port is not a number" not in result.output


def test_encoded_host_is_read_decoded_as_redis_py_does():
    assert str(read_url("redis://my %2F host %2B%3D+", "redis-py").address) == "my / host +=+:6379"


def test_unknown_query_option_is_the_clients_failure_named(cli):
    result = cli("check", "redis", "--url", "redis://localhost?a=1&b=2")

    assert result.exit_code == 2
    assert result.stderr == "✗ error: --url: redis-py fails on the unknown query option 'a'\n"


def test_multi_host_dsn_is_read_as_a_list_and_dns_errors_name_one_host(cli):
    reading = read_url("postgresql://user@host1.invalid:1111,host2.invalid:2222/db", "asyncpg")
    assert [str(a) for a in reading.addresses] == ["host1.invalid:1111", "host2.invalid:2222"]

    result = cli("check", "db", "--url", "postgresql://u:p@host1.invalid:1111,host2.invalid:2222/db", "--timeout", "2")

    assert result.exit_code == 1
    assert "at host1.invalid:1111 (first of 2)" in result.stdout
    assert "host1.invalid,host2.invalid" not in result.output


def test_host_given_in_the_dsn_query_is_the_socket_asyncpg_uses():
    reading = read_url("postgresql://u:p@/db?host=/tmp", "asyncpg")

    assert str(reading.address) == "/tmp/.s.PGSQL.5432"


def test_ipv6_hosts_and_ports_in_the_dsn_query_are_read_as_asyncpg_does():
    reading = read_url("postgresql://u:p@/db?host=[2001:db8::1234],[::1]&port=5433,5434", "asyncpg")

    assert [str(a) for a in reading.addresses] == ["[2001:db8::1234]:5433", "[::1]:5434"]


def test_rediss_without_host_says_where_redis_py_connects():
    reading = read_url("rediss://", "redis-py")

    assert (str(reading.address), reading.tls) == ("localhost:6379", True)
    assert reading.fallback == "no host in the URL: redis-py falls back to localhost:6379"


def test_kombu_socket_broker_url_is_a_valid_broker_url(cli):
    reading = read_url("redis+socket:///run/redis/redis.sock", "kombu", "CELERY_BROKER_URL")
    assert reading.address.socket == "/run/redis/redis.sock"

    result = cli("redis-url", "check", "redis+socket:///run/redis/redis.sock")

    assert result.exit_code == 0, result.output
    assert "socket /run/redis/redis.sock" in result.stdout and "kombu's Unix-socket broker URL" in result.stdout


def test_user_name_length_is_measured_after_percent_decoding(cli):
    result = cli("redis-url", "check", "redis://%61dmin:pw0rd123@coolify-redis:6379/0")

    assert "a user name is set (len 5)" in result.stdout


def test_upper_case_redis_scheme_is_read_as_redis_py_reads_it(cli):
    """redis-py 8.2 (the version pyproject.toml requires) compares schemes case-insensitively."""
    import redis

    assert redis.ConnectionPool.from_url("REDIS://coolify-redis:6379/0").connection_kwargs["host"] == "coolify-redis"

    result = cli("redis-url", "check", "REDIS://coolify-redis:6379/0")

    assert "coolify-redis:6379" in result.stdout
    assert "upper-case" not in result.stdout + result.stderr


def test_upper_case_scheme_is_fine_for_kombu():
    assert str(read_url("REDIS://coolify-redis:6380/0", "kombu").address) == "coolify-redis:6380"


def test_kombu_refuses_a_broker_url_with_a_db_query_as_kombu_does(cli):
    from kombu import Connection

    with pytest.raises(TypeError):
        Connection("redis://localhost:6379?db=0")

    result = cli("celery", "ping", "--broker", "redis://localhost:6379?db=0")

    assert result.exit_code == 2
    assert "kombu (Celery's broker) fails on the unknown query option 'db'" in result.stderr


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://ops:s3cr3t!@coolify-redis:6379/0", "redis://ops:***@coolify-redis:6379/0"),
        ("postgresql://pms%20user:pw@db:5432/pms", "postgresql://pms%20user:***@db:5432/pms"),
        ("postgresql://user:p@ss@db/pms", "postgresql://user:***@db/pms"),
        ("redis://:pa/ss@host:6379/0", "redis://:***@host:6379/0"),
    ],
)
def test_masked_urls_keep_the_user_name_for_acl_deployments(url, masked):
    assert mask_url(url) == masked


def test_unknown_client_is_a_programming_error_not_bad_input():
    with pytest.raises(ValueError):
        read_url("redis://h", "amqp")
    with pytest.raises(UsageError):
        read_url("h:6379", "redis-py")


def test_database_user_name_without_password_is_not_masked_as_a_secret():
    from pmsops.redaction import redact

    read_url("postgresql://postgres@db.internal:5432/pms", "asyncpg")

    assert redact("connecting as postgres to postgresql://postgres@db.internal:5432/pms") == (
        "connecting as postgres to postgresql://postgres@db.internal:5432/pms"
    )


def test_redis_userinfo_without_colon_is_masked_as_the_password_it_almost_always_is():
    from pmsops.redaction import redact

    read_url("redis://Kq9Zx7Wv@coolify-redis:6379/0", "redis-py")

    assert "Kq9Zx7Wv" not in redact("AUTH failed for Kq9Zx7Wv")


def test_a_password_every_parser_reads_whole_does_not_mask_ordinary_words(cli):
    # 'complex+pass=word' is read whole by every client: its pieces ('word') are no secret on their own
    result = cli("redis-url", "check", "redis://:complex+pass=word@coolify-redis:6379/0")

    assert result.exit_code == 0
    assert "password contains raw '+' '='" in result.stdout
    assert "complex+pass=word" not in result.output
