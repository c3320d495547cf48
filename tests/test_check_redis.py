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


class SlowHandshakeRelay:
    """A loopback TCP relay to Redis that holds each connection's first bytes (AUTH, CLIENT SETINFO) for ``hold``
    seconds, then relays both ways at once: a slow connection set-up in front of a fast server."""

    def __init__(self, upstream_port: int, hold: float) -> None:
        import socket
        import threading

        self.upstream_port, self.hold = upstream_port, hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            threading.Thread(target=self._pipe, args=(client, upstream, self.hold), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, 0.0), daemon=True).start()

    @staticmethod
    def _pipe(source, target, hold: float) -> None:
        try:
            first = True
            while data := source.recv(65536):
                if first and hold:
                    time.sleep(hold)  # the injected fault: this connection's set-up is slow
                first = False
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_latency_is_a_ping_on_the_open_connection_not_the_slow_connection_set_up(redis_server):
    """The alert threshold (Redis > 100 ms) is about the round trip; a 1-s AUTH once per connection is not that."""
    from pmsops.checks.redis import check_redis

    relay = SlowHandshakeRelay(redis_server.port, hold=1.0)
    try:
        result = check_redis(f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{relay.port}/0", timeout=5)
    finally:
        relay.close()
    assert "PONG from Redis" in result.summary, result.summary
    assert result.details["latency_ms"] < 1000  # the held second is the set-up's, not the PING's
