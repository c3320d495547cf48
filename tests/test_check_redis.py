"""check redis: against a real redis-server whose requirepass is full of special characters."""

import time
from urllib.parse import quote

from conftest import REDIS_PASSWORD


def test_redis_answers_with_version_latency_and_set_get(cli, redis_server):
    result = cli("check", "redis", "--url", redis_server.url)
    assert result.exit_code == 0, result.output
    assert "PONG from Redis" in result.stdout and "SET/GET ok" in result.stdout
    assert "redis://:***@127.0.0.1" in result.stdout


def test_check_redis_leaves_no_key_behind(redis_server):
    import redis

    from pmsops.checks.redis import check_redis

    assert check_redis(redis_server.url).status == "ok"
    assert redis.Redis.from_url(redis_server.url).keys("pmsops:check:*") == []


def test_wrong_password_is_reported_as_auth_failure_with_encoding_hint(cli, redis_server):
    url = f"redis://:{quote('not-the-password', safe='')}@127.0.0.1:{redis_server.port}/0"
    result = cli("check", "redis", "--url", url)
    assert result.exit_code == 1
    assert "invalid username-password pair" in result.stdout or "WRONGPASS" in result.stdout
    assert "redis-url check" in result.stdout and "compare-password-hash" in result.stdout


def test_unencoded_password_is_bad_input_naming_the_characters_to_encode(cli, redis_server):
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_server.port}/0"
    result = cli("check", "redis", "--url", url)
    assert result.exit_code == 2
    assert "password contains raw '/' '?' '#' (encode as %2F %3F %23)" in result.stderr
    assert "encode-redis-password" in result.stderr
    assert REDIS_PASSWORD not in result.output and "r3d+" not in result.output


def test_password_without_colon_is_authentication_required(cli, redis_server):
    url = f"redis://{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{redis_server.port}/0"
    result = cli("check", "redis", "--url", url)
    assert result.exit_code == 1
    assert "Authentication required" in result.stdout or "invalid username-password" in result.stdout


def test_refused_port_is_named_connection_refused(cli, refused_port):
    result = cli("check", "redis", "--url", f"redis://:x@127.0.0.1:{refused_port}/0")
    assert result.exit_code == 1
    assert "connection refused" in result.stdout


def test_black_holed_redis_fails_within_its_timeout(cli, black_hole):
    started = time.monotonic()
    result = cli("check", "redis", "--url", f"redis://:x@127.0.0.1:{black_hole}/0", "--timeout", "1")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert "within 1 s" in result.stdout
    assert elapsed < 2.0


def test_unresolvable_host_is_named_dns_failure_with_network_hint(cli):
    result = cli("check", "redis", "--url", "redis://:x@coolify-redis.invalid:6379/0")
    assert result.exit_code == 1
    assert "cannot resolve host" in result.stdout
    assert "network" in result.stdout


def test_missing_redis_url_is_usage_error():
    from conftest import invoke

    result = invoke("check", "redis")
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr
    assert "Traceback" not in result.output


def test_check_redis_json_reports_version_and_latency(cli, redis_server):
    import json

    result = cli("check", "redis", "--url", redis_server.url, "--json")
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    details = report["results"][0]["details"]
    assert details["version"] and details["latency_ms"] >= 0
    assert quote(REDIS_PASSWORD, safe="") not in result.stdout


def test_non_redis_url_is_bad_input(cli):
    result = cli("check", "redis", "--url", "ftp://example.test")
    assert result.exit_code == 2 and "unknown scheme" in result.stderr
