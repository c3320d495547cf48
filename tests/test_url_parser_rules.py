"""encode-redis-password verifies its URLs with redis-py's and kombu's parsing rules without
importing them (start-up): these tests pin those rules to the installed libraries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.utils.url import url_to_parts
from redis.connection import parse_url

from pmsops.urls import LIBRARY_RULES, build_redis_url, kombu_rules, redis_py_rules, verify_round_trip

HOSTS = st.sampled_from(["coolify-redis", "localhost", "10.0.0.7", "[::1]", "redis.example.internal"])
PASSWORDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


def _library(url: str) -> tuple[str, object]:
    try:
        return "ok", parse_url(url).get("password")
    except ValueError:
        return "error", None


def _rules(url: str) -> tuple[str, object]:
    try:
        return "ok", redis_py_rules(url).get("password")
    except ValueError:
        return "error", None


@settings(max_examples=400, deadline=None)
@given(PASSWORDS, HOSTS, st.booleans())
def test_the_redis_py_rules_read_every_url_as_redis_py_does(password, host, encoded):
    url = build_redis_url(password, host) if encoded else f"redis://:{password}@{host}:6379/0"

    assert _rules(url) == _library(url)


@settings(max_examples=400, deadline=None)
@given(PASSWORDS, HOSTS, st.booleans())
def test_the_kombu_rules_read_every_url_as_kombu_does(password, host, encoded):
    url = build_redis_url(password, host) if encoded else f"redis://:{password}@{host}:6379/0"
    try:
        expected = ("ok", url_to_parts(url.split(";")[0]).password)
    except ValueError:
        expected = ("error", None)
    try:
        got = ("ok", kombu_rules(url)["password"])
    except ValueError:
        got = ("error", None)

    assert got == expected


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
