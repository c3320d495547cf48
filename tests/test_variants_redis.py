"""Redis as production runs it: TLS (redis-server --tls-port, certificates made by the test), ACL users
(default user disabled, ``+@all -@dangerous`` with key patterns) and a Unix socket. Real servers, real Celery."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest

from conftest import start_worker, stop_worker
from variant_servers import VariantRedis, acl_password

TLS_PASSWORD = "tls+p@ss/w?rd#1"
APP_PASSWORD = "app+s3cr/et?x"
WRONG_PASSWORD = "Zq9-not-it"
CELERY_KEY_PATTERNS = "~app:* ~celery* ~_kombu.* ~unacked* ~*.pidbox* &*"
"""A key pattern Celery works with (the broker, its remote control and the result backend)."""


@pytest.fixture(scope="module")
def tls_redis():
    server = VariantRedis(password=TLS_PASSWORD, tls=True, socket=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def acl_redis():
    server = VariantRedis(
        acl=[
            "default off",
            f"app on {acl_password(APP_PASSWORD)} {CELERY_KEY_PATTERNS} +@all -@dangerous",
            f"narrow on {acl_password(APP_PASSWORD)} ~app:* +@all -@dangerous",
            f"wide on {acl_password(APP_PASSWORD)} ~* &* +@all -@dangerous",
            f"nochannels on {acl_password(APP_PASSWORD)} ~* resetchannels +@all -@dangerous",
        ]
    ).start()
    yield server
    server.stop()


def socket_url(server: VariantRedis, scheme: str, db: int = 0) -> str:
    auth = f":{quote(server.password, safe='')}@"
    if scheme == "unix":
        return f"unix://{auth}{server.socket_path}?db={db}"
    return f"{scheme}://{auth}{server.socket_path}?virtual_host={db}"


# --- TLS ---------------------------------------------------------------------------------------------


def test_rediss_url_without_ssl_cert_reqs_fails_the_lint_as_celery_refuses_it(cli, tls_redis):
    url = tls_redis.tls_url()
    from celery import Celery
    from celery.app.backends import by_url

    app = Celery("refuses", set_as_current=False)
    backend, backend_url = by_url(url, app.loader)
    with pytest.raises(ValueError, match="must have parameter ssl_cert_reqs"):
        backend(app=app, url=backend_url)  # what the worker dies of at start

    result = cli("redis-url", "check", url)
    assert result.exit_code == 1, result.output
    assert "rediss:// without ssl_cert_reqs" in result.stdout and "ssl_cert_reqs=required&ssl_ca_certs=" in result.stdout


def test_rediss_broker_url_without_ssl_cert_reqs_fails_redis_url_check_and_doctor(cli, tls_redis):
    env = {"CELERY_BROKER_URL": tls_redis.tls_url()}
    checked = cli("redis-url", "check", env=env)
    assert checked.exit_code == 1, checked.output
    assert "does not verify the server certificate" in checked.stdout

    doctor = cli("doctor", "--json", "--timeout", "2", env=env)
    report = json.loads(doctor.stdout)
    lint = next(r for r in report["results"] if r["name"] == "redis-url CELERY_BROKER_URL")
    assert lint["status"] == "fail"
    assert any(f["code"] == "tls-no-cert-reqs" for f in lint["details"]["findings"])
    assert doctor.exit_code == 1


def test_rediss_result_backend_without_ssl_cert_reqs_is_bad_input_naming_the_worker_crash(cli, tls_redis):
    result = cli("redis-url", "check", env={"CELERY_RESULT_BACKEND": tls_redis.tls_url()})
    assert result.exit_code == 2
    assert "the worker dies at start" in result.stderr and "ssl_cert_reqs=required" in result.stderr


def test_pong_with_ssl_cert_reqs_none_says_the_certificate_was_not_verified(cli, tls_redis):
    result = cli("check", "redis", "--url", tls_redis.tls_url("ssl_cert_reqs=none"), "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "warn"
    assert "server certificate was NOT verified" in found["summary"]
    assert found["details"]["certificate_verified"] is False


def test_pong_with_the_servers_ca_says_the_certificate_was_verified(cli, tls_redis):
    result = cli("check", "redis", "--url", tls_redis.tls_url(f"ssl_cert_reqs=required&ssl_ca_certs={tls_redis.certs.ca}"))
    assert result.exit_code == 0, result.output
    assert "PONG from Redis" in result.stdout and "TLS certificate verified" in result.stdout


def test_untrusted_certificate_names_ssl_ca_certs(cli, tls_redis):
    result = cli("check", "redis", "--url", tls_redis.tls_url("ssl_cert_reqs=required"))
    assert result.exit_code == 1
    assert "was not accepted (not signed by a trusted CA)" in result.stdout and "ssl_ca_certs=" in result.stdout


def test_plain_redis_url_sent_to_the_tls_port_is_told_to_use_rediss(cli, tls_redis):
    url = f"redis://:{quote(TLS_PASSWORD, safe='')}@127.0.0.1:{tls_redis.tls_port}/0"
    result = cli("check", "redis", "--url", url)
    assert result.exit_code == 1
    assert f"127.0.0.1:{tls_redis.tls_port} speaks TLS, the URL plain redis://" in result.stdout
    assert "use rediss://" in result.stdout
    assert "unexpected error" not in result.stdout


def test_rediss_url_sent_to_the_plain_port_is_told_to_use_redis(cli, tls_redis):
    url = f"rediss://:{quote(TLS_PASSWORD, safe='')}@127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=none"
    result = cli("check", "redis", "--url", url, "--timeout", "1")
    assert result.exit_code == 1
    assert "speaks plain Redis (no TLS), the URL rediss://" in result.stdout and "use redis://" in result.stdout


def test_celery_spelling_cert_none_in_redis_url_is_bad_input_naming_the_lower_case_value(cli, tls_redis):
    result = cli("check", "redis", "--url", tls_redis.tls_url("ssl_cert_reqs=CERT_NONE"))
    assert result.exit_code == 2
    assert "redis-py accepts only required, optional or none" in result.stderr


def test_tls_secrets_never_appear(cli, tls_redis):
    result = cli("check", "redis", "--url", tls_redis.tls_url("ssl_cert_reqs=none"), "--json")
    assert TLS_PASSWORD not in result.output and quote(TLS_PASSWORD, safe="") not in result.output


# --- ACL users ---------------------------------------------------------------------------------------


def test_wrong_password_of_an_acl_user_names_the_user_not_encoding_or_requirepass(cli, acl_redis):
    result = cli("check", "redis", "--url", acl_redis.url(user="app", password=WRONG_PASSWORD))
    assert result.exit_code == 1
    assert "invalid username-password pair" in result.stdout
    assert "no enabled ACL user 'app'" in result.stdout and "ACL GETUSER app" in result.stdout
    for wrong in ("usually no user name", "requirepass", "URL-encoded", "compare-password-hash"):
        assert wrong not in result.stdout


def test_default_user_disabled_hint_says_the_url_must_name_the_user(cli, acl_redis):
    result = cli("check", "redis", "--url", acl_redis.url(user=None, password=APP_PASSWORD))
    assert result.exit_code == 1
    assert "default user is disabled" in result.stdout and "the URL must name the user" in result.stdout
    assert "usually no user name" not in result.stdout


def test_acl_user_without_info_passes_check_redis_and_celery_works_with_it(cli, acl_redis):
    url = acl_redis.url(db=1, user="app", password=APP_PASSWORD)
    result = cli("check", "redis", "--url", url, "--json")
    found = json.loads(result.stdout)["results"][0]
    assert result.exit_code == 0, result.output
    assert found["status"] == "ok"
    assert found["details"]["info_denied"] is True and found["details"]["user"] == "app"
    assert "Redis (version hidden: INFO denied)" in found["summary"]
    assert "SET/GET on pmsops:check:* is denied (outside this user's key pattern); the keys Celery uses are allowed" in found["notes"]
    worker = start_worker(url, "acl@pmsops-variants")  # the same user really runs Celery: the check told the truth
    try:
        ping = cli("celery", "ping", "--broker", url, "--timeout", "3")
        assert ping.exit_code == 0, ping.output
        assert "acl@pmsops-variants" in ping.stdout
    finally:
        stop_worker(worker)


def test_acl_user_outside_celerys_keys_fails_naming_what_celery_needs(cli, acl_redis):
    result = cli("check", "redis", "--url", acl_redis.url(user="narrow", password=APP_PASSWORD))
    assert result.exit_code == 1
    assert "PONG, but this user may not use the keys Celery uses (celery-task-meta-*" in result.stdout
    assert "~celery* ~_kombu.* ~unacked* ~*.pidbox* &*" in result.stdout


def test_acl_user_without_pubsub_channels_fails_naming_publish(cli, acl_redis):
    result = cli("check", "redis", "--url", acl_redis.url(user="nochannels", password=APP_PASSWORD))
    assert result.exit_code == 1
    assert "may not use PUBLISH (Celery's remote control and events use pub/sub channels)" in result.stdout


def test_acl_user_with_every_key_passes_with_our_own_key(cli, acl_redis):
    result = cli("check", "redis", "--url", acl_redis.url(user="wide", password=APP_PASSWORD), "--json")
    found = json.loads(result.stdout)["results"][0]
    assert found["status"] == "ok" and found["details"]["set_get"] is True
    assert not any("pmsops:check:* is denied" in n for n in found["notes"])


# --- Unix sockets ------------------------------------------------------------------------------------


def test_check_redis_accepts_celerys_socket_url(cli, tls_redis):
    result = cli("check", "redis", "--url", socket_url(tls_redis, "redis+socket"))
    assert result.exit_code == 0, result.output
    assert f"at {tls_redis.socket_path}: PONG from Redis" in result.stdout
    assert "redis-py (REDIS_URL) reads only unix://" in result.stdout


def test_unix_scheme_as_broker_url_is_flagged_because_celery_has_no_unix_transport(cli, tls_redis):
    from kombu import Connection

    with pytest.raises(KeyError, match="No such transport: unix"):
        Connection(socket_url(tls_redis, "unix")).transport  # what celery ping / the worker would hit
    result = cli("redis-url", "check", env={"CELERY_BROKER_URL": socket_url(tls_redis, "unix")})
    assert result.exit_code == 2
    assert "no 'unix' transport" in result.stderr and "redis+socket:///path/to/redis.sock" in result.stderr
    doctor = cli("doctor", env={"CELERY_BROKER_URL": socket_url(tls_redis, "unix")})  # a multi-check command: one failed result (#28)
    assert (doctor.exit_code, "redis-url FAILED  CELERY_BROKER_URL: kombu (Celery's broker) has no 'unix' transport" in doctor.stdout) == (1, True)


def test_socket_scheme_as_result_backend_is_flagged_because_celery_has_no_such_backend(cli, tls_redis):
    bad = socket_url(tls_redis, "redis+socket").replace("redis+socket://", "socket://")
    result = cli("redis-url", "check", env={"CELERY_RESULT_BACKEND": bad})
    assert result.exit_code == 2
    assert "Celery has no 'socket' result backend" in result.stderr and "redis+socket://" in result.stderr


def test_celery_socket_urls_pass_the_lint_for_broker_and_backend(cli, tls_redis):
    url = socket_url(tls_redis, "redis+socket")
    result = cli("redis-url", "check", env={"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url, "REDIS_URL": socket_url(tls_redis, "unix")})
    assert result.exit_code == 0, result.output


def test_lint_of_a_socket_url_prints_no_port(cli, tls_redis):
    result = cli("redis-url", "check", socket_url(tls_redis, "unix"))
    assert result.exit_code == 0, result.output
    assert f"socket {tls_redis.socket_path}" in result.stdout
    assert "port" not in result.stdout.splitlines()[0]


def test_missing_socket_is_named(cli, tls_redis):
    result = cli("check", "redis", "--url", f"unix://{tls_redis.workdir}/nothing.sock")
    assert result.exit_code == 1
    assert f"no socket at {tls_redis.workdir}/nothing.sock" in result.stdout
    assert "unexpected error" not in result.stdout


def test_celery_ping_over_a_socket_returns_as_soon_as_the_worker_answered(cli, tls_redis):
    url = socket_url(tls_redis, "redis+socket", db=2)
    worker = start_worker(url, "sock@pmsops-variants")
    try:
        started = time.monotonic()
        result = cli("celery", "ping", "--broker", url, "--timeout", "6")
        elapsed = time.monotonic() - started
        assert result.exit_code == 0, result.output
        assert "sock@pmsops-variants" in result.stdout
        assert elapsed < 3.0, f"waited {elapsed:.1f} s of the 6 s timeout"
    finally:
        stop_worker(worker)
