"""encode-redis-password verifies its URLs with redis-py's and kombu's parsing rules without
importing them (start-up): these tests pin those rules to the installed libraries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from client_readings import kombu_reading, redis_py_reading
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsops.urls import LIBRARY_RULES, build_redis_url, kombu_rules, parse_redis_url, redis_py_rules, verify_round_trip

HOSTS = st.sampled_from(["coolify-redis", "localhost", "10.0.0.7", "[::1]", "redis.example.internal", "", "h:99999", "h:x"])
PASSWORDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
URL_TEXT = st.lists(st.sampled_from(list("ab:/@%#;[]+= \t.") + ["%2F", "%3A", "%40", "%41", "6379", "0", "é", "::1"]), max_size=14).map("".join)
SCHEMES = st.sampled_from(["redis://", "rediss://", "unix://", "redis+socket://", "http://", ""])


def _outcome(fn, url: str) -> tuple[str, object]:
    """(ok, what it read) or (error, the message): the rules must fail where the library fails, alike."""
    try:
        return "ok", fn(url)
    except ValueError as exc:
        return "error", str(exc)


def _urls(password: str, host: str, encoded: bool) -> str:
    return build_redis_url(password, host) if encoded else f"redis://:{password}@{host}:6379/0"


@settings(max_examples=400, deadline=None)
@given(PASSWORDS, HOSTS, st.booleans())
def test_the_redis_py_rules_read_every_password_url_as_redis_py_does(password, host, encoded):
    url = _urls(password, host, encoded)
    if "?" in url:
        return  # a query goes to redis-py itself

    assert _outcome(redis_py_rules, url) == _outcome(redis_py_reading, url)


@settings(max_examples=400, deadline=None)
@given(SCHEMES, URL_TEXT)
def test_the_redis_py_rules_read_any_url_without_a_query_as_redis_py_does(scheme, rest):
    url = scheme + rest

    assert _outcome(redis_py_rules, url) == _outcome(redis_py_reading, url)


@settings(max_examples=400, deadline=None)
@given(PASSWORDS, HOSTS, st.booleans())
def test_the_kombu_rules_read_every_password_url_as_kombu_does(password, host, encoded):
    url = _urls(password, host, encoded)

    assert _outcome(kombu_rules, url) == _outcome(kombu_reading, url)


@settings(max_examples=400, deadline=None)
@given(SCHEMES, URL_TEXT)
def test_the_kombu_rules_read_any_url_as_kombu_does(scheme, rest):
    url = scheme + rest

    assert _outcome(kombu_rules, url) == _outcome(kombu_reading, url)


def test_a_url_with_a_query_is_read_by_redis_py_itself():
    url = "redis://:pw@coolify-redis:6379/0?socket_timeout=abc"

    assert _outcome(parse_redis_url, url) == _outcome(redis_py_reading, url) == ("error", "Invalid value for 'socket_timeout' in connection URL.")


def test_a_wrong_encoding_fails_the_round_trip_by_the_rules_as_by_the_libraries():
    url = "redis://:pass+word@coolify-redis:6379/0"  # quote_plus's space

    assert [c.ok for c in verify_round_trip(url, "pass word", LIBRARY_RULES)] == [False, False]
    assert [c.ok for c in verify_round_trip(url, "pass word")] == [False, False]


def test_encode_redis_password_imports_neither_redis_py_nor_kombu():
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from pmsops.cli.main import main

        sys.stdin = io.StringIO("p+ss=w@rd/#1\\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(["encode-redis-password", "--stdin"])
        print(json.dumps({"exit": code, "loaded": [m for m in ("redis", "kombu") if m in sys.modules], "out": out.getvalue()}))
        """
    )

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0
    assert report["loaded"] == []
    assert "Encoded password: p%2Bss%3Dw%40rd%2F%231" in report["out"]
    assert "round trip: decodes back to the exact password with redis-py and kombu" in report["out"]
