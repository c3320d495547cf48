"""``redis-url check`` reads a plain Redis URL without importing redis-py, kombu or Celery (start-up):
redis-py's ``ConnectionPool.from_url`` (and the connection it builds) is modelled inside a stated
domain, and the lint uses the parsing rules of ``encode-redis-password``. These tests pin the model
to the installed redis-py on arbitrary URLs of the domain, and the rules on arbitrary URLs without
a query, so the guarantee of issue #10 (every URL is read by its client's own parsing) still holds.

The reader's :class:`~pmsops.urlread.Reading` is a function of what the connection holds (plus the
URL and the variable's name), so an equal :class:`~pmsops.urlread.RedisPyConnection`, or an equal
exception, gives an equal reading, exit code and message.
"""

from __future__ import annotations

import pytest
from volumes import volumes
from client_readings import kombu_reading, redis_py_reading
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsops.errors import UsageError
from pmsops.urlread import read_url, redis_py_connection, redis_py_connection_library, redis_py_connection_model, redis_py_model_applies
from pmsops.urls import parse_kombu_url, parse_redis_url

PIECES = list("ab:/@%#;[]+=&. \t\r\n\\'\"`<>$!~*") + [
    "%2F",
    "%3A",
    "%40",
    "%41",
    "%25",
    "%zz",
    "6379",
    "0",
    "99999",
    "-1",
    "é",
    "²",
    "::1",
    "[::1]",
    "\x00",
]
URL_TEXT = st.lists(st.one_of(st.sampled_from(PIECES), st.text(st.characters(exclude_categories=("Cs",)), max_size=3)), max_size=16).map("".join)
DOMAIN_SCHEMES = st.sampled_from(["redis://", "rediss://"])
ANY_SCHEME = st.sampled_from(["redis://", "rediss://", "unix://", "REDIS://", "Redis://", "redis+socket://", "socket://", "http://", " redis://", ""])
PASSWORDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
HOSTS = st.sampled_from(["coolify-redis", "localhost", "127.0.0.1", "[::1]", "[fe80::1%25eth0]", "", "Redis.Example", "h%2Dx", "[::1"])
PORTS = st.sampled_from(["", ":6379", ":6380", ":0", ":65535", ":65536", ":-1", ":x", ":", ": 1", ":²"])
TAILS = st.sampled_from(["", "/", "/0", "/15", "/x", "/0/1", "#frag", "/0#x", " ", "\n", "/ 3"])


def _outcome(fn, url: str) -> tuple[str, object]:
    try:
        return "ok", fn(url)
    except Exception as exc:  # noqa: BLE001 - the model must fail where the library fails, with the same type and text
        return type(exc).__name__, str(exc)


def _without_query(text: str) -> str:
    return text.replace("?", "")


@volumes(quick=300, full=1500)
def test_the_model_reads_any_url_of_its_domain_as_redis_py_does(examples):
    @settings(max_examples=examples, deadline=None)
    @given(DOMAIN_SCHEMES, URL_TEXT)
    def check(scheme, rest):
        url = scheme + _without_query(rest)
        assert redis_py_model_applies(url)

        assert _outcome(redis_py_connection_model, url) == _outcome(redis_py_connection_library, url)

    check()


@settings(max_examples=600, deadline=None)
@given(DOMAIN_SCHEMES, st.text(st.characters(exclude_categories=("Cs",)), max_size=12), PASSWORDS, HOSTS, PORTS, TAILS, st.booleans())
def test_the_model_reads_any_password_url_as_redis_py_does(scheme, user, password, host, port, tail, colon):
    url = _without_query(f"{scheme}{user}{':' if colon else ''}{password}@{host}{port}{tail}")
    assert redis_py_model_applies(url)

    assert _outcome(redis_py_connection_model, url) == _outcome(redis_py_connection_library, url)


@settings(max_examples=600, deadline=None)
@given(ANY_SCHEME, URL_TEXT)
def test_outside_its_domain_redis_py_itself_reads_the_url(scheme, rest):
    url = scheme + rest
    if redis_py_model_applies(url):
        assert _outcome(redis_py_connection, url) == _outcome(redis_py_connection_library, url)
    else:
        assert _outcome(redis_py_connection_model, url)[0] == "ValueError"  # the model refuses what it is not proven for
        assert _outcome(redis_py_connection, url) == _outcome(redis_py_connection_library, url)


@settings(max_examples=800, deadline=None)
@given(ANY_SCHEME, URL_TEXT)
def test_the_lint_reads_any_url_as_redis_py_and_kombu_do(scheme, rest):
    url = scheme + rest

    def lint_reading(u: str) -> dict:  # the lint never reads the connection class
        found = dict(parse_redis_url(u))
        found.pop("connection_class", None)
        return found

    assert _outcome(lint_reading, url) == _outcome(redis_py_reading, url)
    assert _outcome(parse_kombu_url, url) == _outcome(kombu_reading, url)


def test_the_domain_is_lower_case_redis_or_rediss_without_a_query():
    assert redis_py_model_applies("redis://:p%2Bss@coolify-redis:6379/0")
    assert redis_py_model_applies("rediss://:pw@h:6380/1")
    assert redis_py_model_applies("redis://:p/ss#@h:6379/0")  # misread, but read by the model exactly as redis-py misreads it
    for outside in ("unix:///run/redis.sock", "REDIS://h", "redis://h:6379/0?db=2", "redis+socket:///s", " redis://h", "redis:/h"):
        assert not redis_py_model_applies(outside), outside


def test_a_misread_password_is_still_refused_with_the_characters_to_encode():
    url = "redis://:p+ss=w@rd/#1@coolify-redis:6379/0"
    assert redis_py_model_applies(url)

    with pytest.raises(UsageError) as refused:
        read_url(url, "redis-py", "URL")

    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "the password contains raw '/' '#' (encode as %2F %23)" in message
    assert "w@rd" not in message and "p+ss" not in message
