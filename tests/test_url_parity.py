"""Issue #18: pmsops reads every URL exactly as the client that will use it.

Two kinds of evidence:

1. Fixed cases: the URL test vectors of the clients' own test suites (redis-py's
   ``tests/test_connection_pool.py``, kombu's ``t/unit/utils/test_url.py``, asyncpg's
   ``tests/test_connect.py`` ``TestConnectParams``), carried as facts: input → the
   reading the library's tests expect. Where the installed release differs from the
   upstream test (redis-py 8.1 rejects ``REDIS://``), the installed client is the truth.
2. Differential tests: hypothesis (fixed seed) builds URLs from parts an author means
   (hosts, IPv6, ports, users and passwords over printable and non-ASCII characters,
   raw and encoded, queries, paths, sockets, multi-host DSNs) and compares pmsops's
   reading with what redis-py, kombu, Celery's Redis backend and asyncpg produce for the
   same string. A difference is a failure unless pmsops refused the URL (exit 2) with a
   message that names the client's reading; a refusal is a failure unless the client
   really fails or really reads something other than what the author meant.
"""

from __future__ import annotations

import functools

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote

import pytest
from volumes import volumes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmsops.errors import UsageError
from pmsops.redaction import REDACTOR
from pmsops.urlread import asyncpg_parse, read_url


@pytest.fixture(autouse=True)
def _no_libpq_environment(monkeypatch):
    """asyncpg also reads PG* variables and ~/.pgpass: the vectors assume none of them."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    monkeypatch.setenv("PGSSLMODE", "disable")  # no SSL context per parse: keeps thousands of examples fast


def addresses(reading) -> list[str]:
    return [str(a) for a in reading.addresses]


# --- 1. fixed cases from the clients' own test suites ------------------------------------------

REDIS_PY_VECTORS = [
    # (url, expected reading) — from redis-py tests/test_connection_pool.py (TestConnectionPoolURLParsing & co.)
    ("redis://my.host", {"addresses": ["my.host:6379"], "database": "0"}),
    ("redis://my %2F host %2B%3D+", {"addresses": ["my / host +=+:6379"]}),
    ("redis://localhost:6380", {"addresses": ["localhost:6380"]}),
    ("redis://myuser:@localhost", {"user": "myuser", "password": None}),
    ("redis://%2Fmyuser%2F%2B name%3D%24+:@localhost", {"user": "/myuser/+ name=$+"}),
    ("redis://:mypassword@localhost", {"password": "mypassword", "user": None}),
    ("redis://:%2Fmypass%2F%2B word%3D%24+@localhost", {"password": "/mypass/+ word=$+"}),
    ("redis://myuser:mypass@localhost", {"user": "myuser", "password": "mypass"}),
    ("redis://localhost/2", {"database": "2"}),
    ("redis://localhost/2?db=3", {"database": "3"}),
    (
        "redis://localhost/2?socket_timeout=20&socket_connect_timeout=10&socket_keepalive=&retry_on_timeout=Yes&max_connections=10",
        {"database": "2", "options": {"socket_timeout": "20.0", "socket_connect_timeout": "10.0", "retry_on_timeout": "True"}},
    ),
    ("redis://location?client_name=test-client", {"options": {"client_name": "test-client"}}),
    ("redis://location?client_name=worker%2520name", {"options": {"client_name": "worker%20name"}}),
    ("unix:///socket", {"addresses": ["/socket"]}),
    ("unix://myuser:@/socket", {"addresses": ["/socket"], "user": "myuser"}),
    ("unix://:mypassword@/socket", {"addresses": ["/socket"], "password": "mypassword"}),
    ("unix:///socket?db=2", {"addresses": ["/socket"], "database": "2"}),
    ("rediss://my.host", {"addresses": ["my.host:6379"], "tls": True}),
    (
        "rediss://?ssl_cert_reqs=none",
        {"addresses": ["localhost:6379"], "tls": True, "fallback": "no host in the URL: redis-py falls back to localhost:6379"},
    ),
]
REDIS_PY_REFUSED = [
    # (url, words of the one-line refusal) — the library raises for these
    ("redis://localhost/2?socket_timeout=_&socket_connect_timeout=abc", "rejects the value of the query option"),
    ("localhost", "is not a URL"),
    ("redis:foo.bar.com:12345", "is not a URL"),
    # redis-py's pool accepts unknown options (its test checks only the pool's kwargs), but the
    # installed client then fails when it builds the connection: that is what the operator gets.
    ("redis://localhost?a=1&b=2", "fails on the unknown query option 'a'"),
]


@pytest.mark.parametrize(("url", "expected"), REDIS_PY_VECTORS)
def test_redis_py_vectors_read_as_redis_py_reads_them(url, expected):
    check_expected(read_url(url, "redis-py"), expected)


@pytest.mark.parametrize(("url", "words"), REDIS_PY_REFUSED)
def test_redis_py_vectors_the_client_rejects_are_bad_input_naming_why(url, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace("'", "'")):
        read_url(url, "redis-py")


@pytest.mark.parametrize("url", ["REDIS://my.host", "REDISS://my.host", "UNIX:///tmp/redis.sock"])
def test_upper_case_schemes_are_read_as_the_installed_redis_py_reads_them(url):
    import redis

    redis.ConnectionPool.from_url(url)  # redis-py 8.2 accepts them (upstream test_uppercase_scheme_is_accepted)
    assert read_url(url, "redis-py").address is not None


KOMBU_VECTORS = [
    # from kombu t/unit/utils/test_url.py
    ("amqp://user:pass@localhost:5672/my/vhost", {"addresses": ["localhost:5672"], "user": "user", "password": "pass", "database": "my/vhost"}),
    ("rediss://user:password@host:6379/0?ssl_check_hostname=on", {"addresses": ["host:6379"], "user": "user", "password": "password", "tls": True}),
    ("rediss://user:password@host:6379/0?ssl_cert_reqs=required&ssl_ca_certs=%2Fvar%2Fssl%2Fmyca.pem", {"addresses": ["host:6379"], "tls": True}),
    # kombu.Connection behaviour the broker relies on
    ("redis://h1;redis://h2", {"addresses": ["h1:6379"]}),
    ("redis+socket:///run/redis/redis.sock", {"addresses": ["/run/redis/redis.sock"]}),
    ("redis://", {"addresses": ["127.0.0.1:6379"], "fallback": "no host in the URL: kombu falls back to 127.0.0.1"}),
]


@pytest.mark.parametrize(("url", "expected"), KOMBU_VECTORS)
def test_kombu_vectors_read_as_kombu_reads_them(url, expected):
    check_expected(read_url(url, "kombu"), expected)


def test_kombu_failover_list_is_reported_as_a_finding():
    reading = read_url("redis://h1;redis://h2", "kombu")

    assert [f.code for f in reading.findings] == ["failover"]


ASYNCPG_VECTORS = [
    # from asyncpg tests/test_connect.py TestConnectParams (no PG* environment)
    ("postgres://user3:123123@localhost:5555/abcdef", {"addresses": ["localhost:5555"], "user": "user3", "password": "123123", "database": "abcdef"}),
    ("postgresql://user@host1,host2/db", {"addresses": ["host1:5432", "host2:5432"], "user": "user", "database": "db"}),
    ("postgresql://user@host1:1111,host2:2222/db", {"addresses": ["host1:1111", "host2:2222"]}),
    ("postgresql:///db?user=user&host=[2001:db8::1234],[::1]", {"addresses": ["[2001:db8::1234]:5432", "[::1]:5432"], "user": "user"}),
    ("postgresql:///dbname?host=/unix_sock/test&user=spam", {"addresses": ["/unix_sock/test/.s.PGSQL.5432"], "user": "spam", "database": "dbname"}),
    (
        "postgresql://us%40r:p%40ss@h%40st1,h%40st2:543%33/d%62",
        {"addresses": ["h@st1:5432", "h@st2:5433"], "user": "us@r", "password": "p@ss", "database": "db"},
    ),
    ("postgresql:///d%62?user=us%40r&host=h%40st&port=543%33", {"addresses": ["h@st:5433"], "user": "us@r", "database": "db"}),
    ("postgres://user@?port=56226&host=%2Ftmp", {"addresses": ["/tmp/.s.PGSQL.56226"], "user": "user", "database": "user"}),
    (
        "postgres:///db?host=/cloudsql/project:region:instance-name&user=spam",
        {"addresses": ["/cloudsql/project:region:instance-name/.s.PGSQL.5432"], "user": "spam"},
    ),
    (
        "postgres:///db?host=127.0.0.1:5432,/cloudsql/project:region:instance-name,localhost:5433&user=spam",
        {"addresses": ["127.0.0.1:5432", "/cloudsql/project:region:instance-name/.s.PGSQL.5432", "localhost:5433"]},
    ),
    ("postgres:///postgres?host=127.0.0.1,127.0.0.2&port=5432&user=postgres", {"addresses": ["127.0.0.1:5432", "127.0.0.2:5432"]}),
    ("postgresql+asyncpg://u:p@db:5433/pms", {"addresses": ["db:5433"], "user": "u", "password": "p", "database": "pms"}),
]
ASYNCPG_REFUSED = [
    # asyncpg reads host 'ss@host' and password 'p' (dsn_only_unquoted_host): the author meant otherwise
    ("postgresql://user:p@ss@host/db", "asyncpg would send a password of 1 character to a host made of a piece of the password"),
    ("pq:///dbname?host=/unix_sock/test&user=spam", "unknown database scheme"),
    ("postgresql://u:p@h/db?bad", "cannot read the query string"),
]


@pytest.mark.parametrize(("url", "expected"), ASYNCPG_VECTORS)
def test_asyncpg_vectors_read_as_asyncpg_reads_them(url, expected):
    check_expected(read_url(url, "asyncpg"), expected)


@pytest.mark.parametrize(("url", "words"), ASYNCPG_REFUSED)
def test_asyncpg_vectors_the_client_misreads_are_bad_input_naming_its_reading(url, words):
    with pytest.raises(UsageError, match=words):
        read_url(url, "asyncpg")


def check_expected(reading, expected: dict) -> None:
    for key, value in expected.items():
        got = addresses(reading) if key == "addresses" else getattr(reading, key)
        if key == "options":
            got = {k: got.get(k) for k in value}
        assert got == value, (key, got, value)


# --- 2. differential: generated URLs against the libraries -----------------------------------------

PRINTABLE = "".join(chr(c) for c in range(32, 127))
NON_ASCII = "äöüßéñç€中文ДЖ"
SECRET_CHARS = st.text(alphabet=PRINTABLE + NON_ASCII + "\t", min_size=1, max_size=16)
LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)


# The strategies are built once, here, not inside the composites on every draw: hypothesis validated each new one
# again (a third of these tests' CPU). The same strategies draw the same examples.
SHAPES = st.sampled_from(["none", "password", "user+password", "user"])
SHAPES_WITHOUT_USER = st.sampled_from(["none", "password"])
ENCODE = st.booleans()
USER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.-" + NON_ASCII, min_size=1, max_size=10)
HOST_KIND = st.sampled_from(["name", "name", "ipv4", "ipv6", "encoded", "empty"])
LABELS = st.lists(LABEL, min_size=1, max_size=3)
OCTET = st.integers(0, 255)
IPV6 = st.sampled_from(["::1", "fd00::3", "2001:db8::1234"])
ENCODED_HOST = st.text(alphabet="abc /+=", min_size=1, max_size=8)
PORT = st.one_of(st.none(), st.integers(1, 65535))
DB_NUMBER = st.one_of(st.none(), st.integers(0, 15))
REDIS_QUERY = st.sampled_from(["", "?socket_timeout=3", "?db=4", "?client_name=ops%20check", "?health_check_interval=10"])
PG_HOSTS = st.lists(st.one_of(LABEL, st.sampled_from(["[::1]", "[2001:db8::1]", "127.0.0.1"])), min_size=1, max_size=3)
PG_QUERY = st.sampled_from(["", "?sslmode=disable", "?application_name=pmsops", "?connect_timeout=3"])
PG_SCHEME = st.sampled_from(["postgresql", "postgres"])


@functools.cache
def _schemes(schemes: tuple[str, ...]):
    return st.sampled_from(schemes)


@dataclass
class Meant:
    """What the author of a generated URL meant, decoded."""

    url: str
    user: str | None
    password: str | None
    host: str  # '' when the URL has none
    port: int | None


def _userinfo(draw, allow_user: bool) -> tuple[str, str | None, str | None]:
    """(text before '@' or '', user meant, password meant); raw or percent-encoded at random."""
    shape = draw(SHAPES if allow_user else SHAPES_WITHOUT_USER)
    if shape == "none":
        return "", None, None
    encode = draw(ENCODE)
    write = (lambda s: quote(s, safe="")) if encode else (lambda s: s)
    user = draw(USER) if "user" in shape else ""
    if shape == "user":
        return f"{write(user)}@", user, None
    password = draw(SECRET_CHARS)
    meant_password = password if encode else unquote(password)  # a raw '%41' is decoded by every client
    return f"{write(user)}:{write(password)}@", user or None, meant_password


@st.composite
def redis_urls(draw, schemes=("redis", "rediss")) -> Meant:
    scheme = draw(_schemes(schemes))
    userinfo, user, password = _userinfo(draw, allow_user=True)
    host_kind = draw(HOST_KIND)
    if host_kind == "name":
        host = ".".join(draw(LABELS))
        written = host
    elif host_kind == "ipv4":
        host = ".".join(str(draw(OCTET)) for _ in range(4))
        written = host
    elif host_kind == "ipv6":
        host = draw(IPV6)
        written = f"[{host}]"
    elif host_kind == "encoded":
        host = draw(ENCODED_HOST).strip() or "a"
        written = quote(host, safe="")
    else:
        host, written = "", ""
    port = draw(PORT)
    port_text = f":{port}" if port is not None else ""
    db = draw(DB_NUMBER)
    path = f"/{db}" if db is not None else ""
    query = draw(REDIS_QUERY)
    return Meant(f"{scheme}://{userinfo}{written}{port_text}{path}{query}", user, password, host, port)


@st.composite
def database_urls(draw) -> Meant:
    userinfo, user, password = _userinfo(draw, allow_user=True)
    hosts = draw(PG_HOSTS)
    ports = [draw(PORT) for _ in hosts]
    hostspec = ",".join(h + (f":{p}" if p else "") for h, p in zip(hosts, ports))
    query = draw(PG_QUERY)
    first = hosts[0].strip("[]")
    url = f"{draw(PG_SCHEME)}://{userinfo}{hostspec}/{draw(LABEL)}{query}"
    return Meant(url, user, password, first, ports[0] or 5432)


def _oracle_redis_py(url: str) -> dict:
    import redis

    pool = redis.ConnectionPool.from_url(url)
    conn = pool.make_connection()
    path = getattr(conn, "path", None)
    return {
        "address": path if path else f"{'[' + conn.host + ']' if ':' in conn.host else conn.host}:{conn.port}",
        "host": None if path else conn.host,
        "user": pool.connection_kwargs.get("username"),
        "password": pool.connection_kwargs.get("password"),
        "database": str(conn.db),
    }


def _oracle_kombu(url: str) -> dict:
    from kombu import Connection

    conn = Connection(url)
    # kombu's Redis channel: 'host': conninfo.hostname or '127.0.0.1', 'port': conninfo.port or default_port
    host, port = conn.hostname or "127.0.0.1", conn.port or conn.transport.default_port
    return {
        "address": f"{'[' + host + ']' if ':' in host else host}:{port}",
        "host": host,
        "user": conn.userid,
        "password": conn.password,
        "database": conn.virtual_host,
    }


_CELERY_APP = None


def _oracle_backend(url: str) -> dict:
    global _CELERY_APP
    from celery import Celery
    from celery.backends.redis import RedisBackend

    if _CELERY_APP is None:
        _CELERY_APP = Celery("parity", set_as_current=False)
    params = RedisBackend(app=_CELERY_APP, url=url).connparams
    host = params["host"]
    return {
        "address": f"{'[' + host + ']' if ':' in host else host}:{params['port']}",
        "host": host,
        "user": params.get("username"),
        "password": params.get("password"),
        "database": str(params["db"]),
    }


def _oracle_asyncpg(url: str) -> dict:

    addrs, params = asyncpg_parse(url)
    first = addrs[0]
    address = first if isinstance(first, str) else f"{'[' + first[0] + ']' if ':' in first[0] else first[0]}:{first[1]}"
    return {
        "address": address,
        "host": None if isinstance(first, str) else first[0],
        "user": params.user,
        "password": params.password,
        "database": params.database,
    }


ORACLES = {"redis-py": _oracle_redis_py, "kombu": _oracle_kombu, "celery-backend": _oracle_backend, "asyncpg": _oracle_asyncpg}


def _fragments(secret: str | None) -> set[str]:
    if not secret:
        return set()
    return {secret[i:j] for i in range(len(secret)) for j in range(i + 4, len(secret) + 1) if any(c.isalnum() for c in secret[i:j])}


@functools.cache
def _templates() -> str:
    """pmsops's message templates (the source of :mod:`pmsops.urlread`), read once, not once per example."""
    import inspect

    from pmsops import urlread

    return inspect.getsource(urlread)


def _own_words(meant: Meant) -> str:
    """Text a refusal may contain that is not the password: pmsops's message templates and the URL's host part."""
    return _templates() + meant.url.rsplit("@", 1)[-1]


def compare(client: str, meant: Meant) -> None:
    """The one rule: pmsops's reading is the client's, or pmsops refuses exactly when the client would fail or misread."""
    REDACTOR.forget_all()
    try:
        oracle, oracle_error = ORACLES[client](meant.url), None
    except Exception as exc:  # noqa: BLE001 - the library's own failure is the fact we compare with
        oracle, oracle_error = None, exc
    try:
        reading, refusal = read_url(meant.url, client, "URL"), None
    except UsageError as exc:
        reading, refusal = None, exc
    if refusal is None:
        assert oracle_error is None, f"pmsops accepted what {client} rejects: {meant.url!r}: {oracle_error!r}"
        assert str(reading.address) == oracle["address"], (meant.url, str(reading.address), oracle)
        assert (reading.user, reading.password, reading.database) == (oracle["user"], oracle["password"], oracle["database"]), (meant.url, oracle)
        # and the client reads what the author meant: a silent misreading is a failure
        assert oracle["password"] == (meant.password or None), f"{client} misreads the password of {meant.url!r} and pmsops said nothing"
        assert oracle["user"] == (meant.user or None) or client == "asyncpg" and meant.user is None, (meant.url, oracle)
        if meant.host:
            assert (oracle["host"] or "").lower() == meant.host.lower(), (meant.url, oracle)
        else:
            assert reading.fallback, f"no host in {meant.url!r} but pmsops does not name {client}'s fallback"
        return
    message = refusal.message
    own = _own_words(meant)
    leaked = [f for f in _fragments(meant.password) if f in message and f not in own]
    assert leaked == [], (meant.url, message)
    if oracle_error is None:
        misread = (
            oracle["password"] != (meant.password or None)
            or meant.user
            and oracle["user"] != meant.user
            or meant.host
            and (oracle["host"] or "").lower() != meant.host.lower()
        )
        assert misread, f"false alarm: {client} reads {meant.url!r} as meant, pmsops refused: {message}"
        assert "would send" in message, f"refusal does not name {client}'s reading: {message}"


def parity(examples: int):
    """Fixed seed: the same URLs every run, the first ``examples`` of them."""
    return settings(derandomize=True, max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


@volumes(quick=300, full=3000)
def test_generated_redis_urls_are_read_as_redis_py_reads_them(examples):
    @parity(examples)
    @given(redis_urls(("redis", "rediss", "unix")))
    def check(meant):
        if meant.url.startswith("unix://"):
            meant = Meant(meant.url.replace("unix://", "redis://", 1), meant.user, meant.password, meant.host, meant.port)
        compare("redis-py", meant)

    check()


@volumes(quick=300, full=3000)
def test_generated_broker_urls_are_read_as_kombu_reads_them(examples):
    @parity(examples)
    @given(redis_urls())
    def check(meant):
        compare("kombu", meant)

    check()


@volumes(quick=300, full=2000)
def test_generated_result_backend_urls_are_read_as_celerys_redis_backend_reads_them(examples):
    @parity(examples)
    @given(redis_urls())
    def check(meant):
        compare("celery-backend", meant)

    check()


@volumes(quick=300, full=3000)
def test_generated_database_urls_are_read_as_asyncpg_reads_them(examples):
    @parity(examples)
    @given(database_urls())
    def check(meant):
        compare("asyncpg", meant)

    check()
