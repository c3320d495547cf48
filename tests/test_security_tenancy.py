"""One agency against another, hostile input and bare tokens, against the reference API on loopback.

Two agencies are seeded by the sandbox (A: Kolibri, two properties; B: Alpen, one property).
Agency A must not reach any of B's ids, whatever the endpoint or the place of the id; hostile
values are 4xx with the contract's bodies, never a 500; the API log holds no traceback.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_helpers import run

API = "/api/v1/channel-connections"


@dataclass
class World:
    base: str
    env: dict[str, str] = field(repr=False)  # a failing hypothesis example prints the fixtures: no secrets in it
    token_a: str = field(repr=False)
    token_b: str = field(repr=False)
    seed: dict[str, Any] = field(repr=False)
    api_log: str
    log_start: int = 0

    def headers(self, who: str = "a") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_a if who == 'a' else self.token_b}"}

    def prop(self, agency: str) -> str:
        return next(p["id"] for p in self.seed["properties"].values() if p["agency"] == agency)

    def connection(self, agency: str) -> str:
        return next(c["id"] for c in self.seed["connections"] if c["agency"] == agency and c["status"] == "active")

    def log_size(self) -> int:
        with open(self.api_log, "rb") as handle:
            return len(handle.read())

    def log_since(self, offset: int) -> str:
        with open(self.api_log, "rb") as handle:
            return handle.read()[offset:].decode(errors="replace")


def password_grant(env: dict[str, str], email: str, password: str) -> str:
    response = httpx.post(
        f"{env['SB_URL']}/auth/v1/token",
        params={"grant_type": "password"},
        headers={"apikey": env["ANON_KEY"]},
        json={"email": email, "password": password},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def world(sandbox):
    state = sandbox.load()
    env = state.env
    [(email_b, password_b)] = state.users.items()
    world = World(
        env["PMS_API_URL"],
        env,
        password_grant(env, env["EMAIL"], env["PASSWORD"]),
        password_grant(env, email_b, password_b),
        state.seed,
        state.components["api"].log,
    )
    world.log_start = world.log_size()
    started = run(env["DATABASE_URL"], lambda c: c.fetchval("SELECT now()"))
    yield world
    # what the fuzz created for agency B (valid values happen): soft-deleted, so other tests see the seed only
    run(
        env["DATABASE_URL"],
        lambda c: c.execute(
            "UPDATE channel_connections SET deleted_at = now() WHERE agency_id = $1::uuid AND created_at >= $2", world.seed["agencies"]["b"], started
        ),
    )


@pytest.fixture(scope="module")
def own_connection(world):
    """A connection of agency A on A's own property, for the tests that change or fuzz one (the seed stays as it is)."""
    response = httpx.post(
        f"{world.base}{API}/",
        headers=world.headers("a"),
        timeout=10,
        json={"platform_type": "airbnb", "platform_listing_id": "SEC-OWN-1", "property_id": world.prop("a"), "status": "paused"},
    )
    assert response.status_code == 201, response.text
    cid = response.json()["id"]
    yield cid
    httpx.delete(f"{world.base}{API}/{cid}", headers=world.headers("a"), timeout=10)


# --- tenant isolation ------------------------------------------------------------------------------------


def test_agency_a_cannot_create_a_connection_on_agency_bs_property(world):
    count = "SELECT count(*) FROM channel_connections WHERE property_id = $1::uuid"
    before = run(world.env["DATABASE_URL"], lambda c: c.fetchval(count, world.prop("b")))
    response = httpx.post(
        f"{world.base}{API}/",
        headers=world.headers("a"),
        timeout=10,
        json={"platform_type": "airbnb", "platform_listing_id": "ATTACKER-LISTING", "property_id": world.prop("b")},
    )
    assert (response.status_code, response.json()) == (404, {"detail": "Property not found"})
    after = run(world.env["DATABASE_URL"], lambda c: c.fetchval(count, world.prop("b")))
    assert after == before


def test_unknown_property_is_404_like_another_agencys(world):
    response = httpx.post(
        f"{world.base}{API}/",
        headers=world.headers("a"),
        timeout=10,
        json={"platform_type": "airbnb", "platform_listing_id": "L-1", "property_id": str(uuid.uuid4())},
    )
    assert (response.status_code, response.json()) == (404, {"detail": "Property not found"})


def test_agency_a_cannot_move_its_connection_onto_agency_bs_property(world, own_connection):
    response = httpx.put(f"{world.base}{API}/{own_connection}", headers=world.headers("a"), json={"property_id": world.prop("b")}, timeout=10)
    assert (response.status_code, response.json()) == (404, {"detail": "Property not found"})
    query = "SELECT property_id::text FROM channel_connections WHERE id = $1::uuid"
    stored = run(world.env["DATABASE_URL"], lambda c: c.fetchval(query, own_connection))
    assert stored == world.prop("a")
    moved = httpx.put(f"{world.base}{API}/{own_connection}", headers=world.headers("a"), json={"property_id": world.prop("a")}, timeout=10)
    assert moved.status_code == 200 and moved.json()["property_id"] == world.prop("a")


def test_every_endpoint_answers_404_for_agency_bs_connection(world):
    other = world.connection("b")
    calls = [
        ("GET", f"{API}/{other}", None),
        ("PUT", f"{API}/{other}", {"status": "paused"}),
        ("DELETE", f"{API}/{other}", None),
        ("POST", f"{API}/{other}/test", None),
        ("POST", f"{API}/{other}/sync", {"sync_type": "pricing"}),
        ("GET", f"{API}/{other}/sync-logs", None),
        ("GET", f"{API}/{other}/sync-batches", None),
    ]
    answers = {
        (method, path.rsplit("/", 1)[-1]): httpx.request(method, world.base + path, headers=world.headers("a"), json=body, timeout=10)
        for method, path, body in calls
    }
    assert {k: (r.status_code, r.json()) for k, r in answers.items()} == {k: (404, {"detail": "Connection not found"}) for k in answers}
    row = run(world.env["DATABASE_URL"], lambda c: c.fetchrow("SELECT status, deleted_at FROM channel_connections WHERE id = $1::uuid", other))
    assert (row["status"], row["deleted_at"]) == ("active", None)


def test_sync_log_filters_never_reach_another_agencys_logs(world, own_connection):
    from pmsops.sync.trigger import trigger_sync

    theirs = run(world.env["DATABASE_URL"], lambda c: trigger_sync(c, world.connection("b"), "full", send=lambda *_: None))
    for params in ({"task_id": theirs.task_ids[0]}, {"batch_id": theirs.batch_id}):
        response = httpx.get(f"{world.base}{API}/{own_connection}/sync-logs", headers=world.headers("a"), params=params, timeout=10)
        assert response.status_code == 200 and response.json()["logs"] == [], params
    batches = httpx.get(f"{world.base}{API}/{own_connection}/sync-batches", headers=world.headers("a"), timeout=10)
    assert theirs.batch_id not in batches.text
    close = "UPDATE channel_sync_logs SET status = 'cancelled' WHERE batch_id = $1::uuid"
    run(world.env["DATABASE_URL"], lambda c: c.execute(close, theirs.batch_id))


def test_x_agency_id_of_another_agency_is_403(world):
    response = httpx.get(f"{world.base}{API}/", headers={**world.headers("a"), "x-agency-id": world.seed["agencies"]["b"]}, timeout=10)
    assert (response.status_code, response.json()) == (403, {"detail": "Not a member of this agency"})


# --- request size: 1 MiB, however the body is sent ---------------------------------------------------------

LIMIT = 1024 * 1024


def _create_body(world: World, listing: bytes) -> list[bytes]:
    """A connection-create body in pieces (sent as given: chunked when it is an iterator)."""
    return [
        b'{"platform_type": "airbnb", "status": "paused", "property_id": "',
        world.prop("a").encode(),
        b'", "platform_listing_id": "',
        listing,
        b'"}',
    ]


def _connections_with_listing_longer_than(world: World, size: int) -> int:
    sql = "SELECT count(*) FROM channel_connections WHERE length(platform_listing_id) > $1"
    return run(world.env["DATABASE_URL"], lambda c: c.fetchval(sql, size))


def test_a_body_over_one_mib_is_refused_413_by_its_content_length(world):
    body = b"".join(_create_body(world, b"L" * (LIMIT + 1)))

    response = httpx.post(f"{world.base}{API}/", headers={**world.headers("a"), "content-type": "application/json"}, content=body, timeout=10)

    assert response.status_code == 413
    assert _connections_with_listing_longer_than(world, LIMIT) == 0


def test_a_chunked_body_over_one_mib_is_refused_413_too(world):
    """No Content-Length to check: what arrives is counted (before, a chunked body of any size reached the route)."""
    pieces = _create_body(world, b"C" * (2 * LIMIT))

    response = httpx.post(f"{world.base}{API}/", headers={**world.headers("a"), "content-type": "application/json"}, content=iter(pieces), timeout=10)

    assert response.status_code == 413
    assert _connections_with_listing_longer_than(world, LIMIT) == 0
    assert httpx.get(f"{world.base}/health", timeout=10).status_code == 200  # the API stays up


def test_a_small_chunked_body_is_served(world):
    pieces = _create_body(world, b"SEC-CHUNKED-1")

    response = httpx.post(f"{world.base}{API}/", headers={**world.headers("a"), "content-type": "application/json"}, content=iter(pieces), timeout=10)

    assert response.status_code == 201, response.text
    httpx.delete(f"{world.base}{API}/{response.json()['id']}", headers=world.headers("a"), timeout=10)


# --- tokens ----------------------------------------------------------------------------------------------


def _bare_token(world: World, drop: str) -> str:
    import jwt

    user = run(world.env["DATABASE_URL"], lambda c: c.fetchval("SELECT id::text FROM sandbox_users WHERE email = $1", world.env["EMAIL"]))
    claims = {"sub": user, "aud": "authenticated", "role": "authenticated", "exp": int(time.time()) + 600, "iat": int(time.time())}
    del claims[drop]
    return jwt.encode(claims, world.env["SUPABASE_JWT_SECRET"], algorithm="HS256")


@pytest.mark.parametrize("claim", ["exp", "sub", "aud"])
def test_token_without_a_required_claim_is_401_naming_it(world, claim):
    response = httpx.get(f"{world.base}{API}/", headers={"Authorization": f"Bearer {_bare_token(world, claim)}"}, timeout=10)
    assert (response.status_code, response.json()) == (401, {"detail": f"Token has no '{claim}' claim (exp, sub, aud are required)"})


def test_token_verify_refuses_a_token_without_exp(cli, world, monkeypatch):
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TOKEN", _bare_token(world, "exp"))
    result = cli("token", "--verify")
    assert result.exit_code == 1, result.output
    assert "Token has no 'exp' claim (exp, sub, aud are required)" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize("claim", ["exp", "sub", "aud"])
def test_token_without_verify_already_names_a_missing_claim(cli, world, monkeypatch, claim):
    """The claims are readable without the secret: an operator checking a token learns at once why the API says 401."""
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TOKEN", _bare_token(world, claim))
    result = cli("token", "--json")
    assert result.exit_code == 1, result.output
    [found] = json.loads(result.stdout)["results"]
    assert found["summary"].endswith(f"Token has no '{claim}' claim (exp, sub, aud are required)")
    assert found["details"]["missing_claims"] == [claim]


# --- hostile input: 4xx with the documented bodies, never a 500 -------------------------------------------

HOSTILE_CASES = [
    ("list offset beyond bigint", "GET", f"{API}/", {"offset": "99999999999999999999"}, None, 422, ["query", "offset"]),
    ("logs offset beyond bigint", "GET", f"{API}/{{own}}/sync-logs", {"offset": "99999999999999999999"}, None, 422, ["query", "offset"]),
    ("batches offset beyond bigint", "GET", f"{API}/{{own}}/sync-batches", {"offset": "99999999999999999999"}, None, 422, ["query", "offset"]),
    ("NUL task_id filter", "GET", f"{API}/{{own}}/sync-logs", {"task_id": "\x00"}, None, 422, ["request"]),
    ("NUL status filter", "GET", f"{API}/{{own}}/sync-logs", {"status": "a\x00"}, None, 422, ["request"]),
    ("bogus status on PUT", "PUT", f"{API}/{{own}}", None, {"status": "bogus"}, 422, ["body", "status"]),
    (
        "bogus status on create",
        "POST",
        f"{API}/",
        None,
        {"platform_type": "airbnb", "platform_listing_id": "x", "status": "bogus"},
        422,
        ["body", "status"],
    ),
    ("NUL in listing id", "POST", f"{API}/", None, {"platform_type": "airbnb", "platform_listing_id": "a\x00b"}, 422, ["request"]),
    ("NUL in metadata", "PUT", f"{API}/{{own}}", None, {"platform_metadata": {"note": "x\x00y"}}, 422, ["request"]),
    ("NUL in listing id on PUT", "PUT", f"{API}/{{own}}", None, {"platform_listing_id": "\x00"}, 422, ["request"]),
    ("overlong listing id", "PUT", f"{API}/{{own}}", None, {"platform_listing_id": "x" * 100_000}, 422, ["body", "platform_listing_id"]),
    ("NUL in login e-mail", "POST", "/auth/v1/token", {"grant_type": "password"}, {"email": "a\x00@b.test", "password": "x"}, 422, ["request"]),
    ("lone surrogate in listing id", "PUT", f"{API}/{{own}}", None, {"platform_listing_id": "a\ud800"}, 422, ["body"]),
    (
        "lone surrogate in platform token",
        "POST",
        f"{API}/",
        None,
        {"platform_type": "airbnb", "platform_listing_id": "x", "access_token": "\udfff"},
        422,
        ["body"],
    ),
]


def _send(world: World, method: str, path: str, params: dict[str, str] | None, body: Any) -> httpx.Response:
    """JSON with ASCII escapes, as any client may send it (httpx's own encoder cannot carry a lone surrogate)."""
    headers = {**world.headers("a"), "apikey": world.env["ANON_KEY"], "content-type": "application/json"}
    content = None if body is None else json.dumps(body).encode()
    return httpx.request(method, world.base + path, params=params, content=content, headers=headers, timeout=10)


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=[c[0] for c in HOSTILE_CASES])
def test_hostile_value_is_422_with_fastapis_detail_list_not_500(world, own_connection, case):
    _, method, path, params, body, status, loc = case
    response = _send(world, method, path.format(own=own_connection), params, body)
    assert response.status_code == status, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"][: len(loc)] == loc and set(detail) == {"loc", "msg", "type"}  # no value echoed back


def test_hostile_input_leaves_no_traceback_in_the_api_log(world, own_connection):
    start = world.log_size()
    for _, method, path, params, body, _, _ in HOSTILE_CASES:
        _send(world, method, path.format(own=own_connection), params, body)
    written = world.log_since(start)
    assert "Traceback" not in written and "a\x00b" not in written and "bogus" not in written, written[-2000:]


SPECIAL = st.sampled_from(
    [
        99999999999999999999,
        -99999999999999999999,
        2**63,
        2**31,
        -1,
        0,
        1.5,
        -0.0,
        "\x00",
        "a\x00b",
        "%00",
        "x" * 5000,
        "' OR 1=1 --",
        "../../etc/passwd",
        "😀",
        "\u202e",
        "\ud800",
        "a\udfffb",
        "NaN",
        "",
        " ",
        None,
        True,
        False,
        [],
        {},
    ]
)
TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # surrogates included
SCALAR = st.one_of(SPECIAL, st.integers(), TEXT, st.floats(allow_nan=False, allow_infinity=False), st.booleans())
HOSTILE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)  # what HTTP can carry


def _slots(world: World, own: str) -> dict[str, Any]:
    """Every place a request carries a value: (method, path template, where, name, valid base body, who)."""
    create = {"platform_type": "airbnb", "platform_listing_id": "FUZZ", "property_id": world.prop("b"), "status": "paused"}
    slots = {}
    for name in ("limit", "offset"):
        slots[f"list.{name}"] = ("GET", f"{API}/", "query", name, None, "a")
        slots[f"batches.{name}"] = ("GET", f"{API}/{own}/sync-batches", "query", name, None, "a")
    slots["batches.status"] = ("GET", f"{API}/{own}/sync-batches", "query", "status", None, "a")
    for name in ("limit", "offset", "status", "operation_type", "task_id", "batch_id", "direction"):
        slots[f"logs.{name}"] = ("GET", f"{API}/{own}/sync-logs", "query", name, None, "a")
    for name in create:
        slots[f"create.{name}"] = ("POST", f"{API}/", "body", name, create, "b")
    for name in ("platform_metadata", "access_token"):
        slots[f"create.{name}"] = ("POST", f"{API}/", "body", name, create, "b")
    slots["create.body"] = ("POST", f"{API}/", "whole", None, None, "b")
    for name in ("status", "platform_listing_id", "platform_metadata", "property_id"):
        slots[f"update.{name}"] = ("PUT", f"{API}/{own}", "body", name, {}, "a")
    slots["update.body"] = ("PUT", f"{API}/{own}", "whole", None, None, "a")
    for method, suffix in (
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("POST", "/test"),
        ("POST", "/sync"),
        ("GET", "/sync-logs"),
        ("GET", "/sync-batches"),
    ):
        body = {"sync_type": "availability"} if suffix == "/sync" else None
        slots[f"path {method} {suffix or '/'}"] = (method, f"{API}/{{value}}{suffix}", "path", None, body, "a")
    slots["sync.sync_type"] = ("POST", f"{API}/{own}/sync", "body", "sync_type", {}, "a")
    slots["token.grant_type"] = ("POST", "/auth/v1/token", "query", "grant_type", {"email": "nobody@x.test", "password": "x"}, None)
    for name in ("email", "password"):
        slots[f"token.{name}"] = ("POST", "/auth/v1/token", "body", name, {"email": "nobody@x.test", "password": "x"}, None)
    return slots


@pytest.fixture(scope="module")
def fuzz_client():
    with httpx.Client(timeout=10) as client:
        yield client


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_endpoint_answers_500_to_hostile_values(world, own_connection, fuzz_client, data):
    from urllib.parse import quote

    slots = _slots(world, own_connection)
    name = data.draw(st.sampled_from(sorted(slots)), label="slot")
    method, path, where, field, base, who = slots[name]
    value = data.draw(HOSTILE, label="value")

    def encoded(text: Any) -> str:  # what a raw client can put in a URL, lone surrogates included
        return quote(str(text).encode("utf-8", "surrogatepass"), safe="")

    query = "grant_type=password" if path == "/auth/v1/token" else ""
    body: Any = dict(base) if isinstance(base, dict) else base
    if where == "query":
        query = "&".join(q for q in (query, f"{field}={encoded(value)}") if q)
    elif where == "body":
        body[field] = value
    elif where == "whole":
        body = value
    elif where == "path":
        path = path.replace("{value}", encoded(value))
    headers = {"apikey": world.env["ANON_KEY"], **(world.headers(who) if who else {})}
    content = None if body is None else json.dumps(body).encode()  # ASCII escapes: lone surrogates travel as \\ud800
    if content is not None:
        headers["content-type"] = "application/json"
    response = fuzz_client.request(method, world.base + path + (f"?{query}" if query else ""), content=content, headers=headers)
    assert response.status_code < 500, (name, repr(value)[:200], response.status_code, response.text[:300])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=HEADER_TEXT, agency=HEADER_TEXT)
def test_hostile_auth_headers_are_401_or_403_never_500(world, fuzz_client, authorization, agency):
    for headers in ({"Authorization": authorization}, {"Authorization": f"Bearer {authorization}".strip()}):
        response = fuzz_client.get(f"{world.base}{API}/", headers=headers)
        assert response.status_code == 401, (headers, response.text)
    response = fuzz_client.get(f"{world.base}{API}/", headers={**world.headers("a"), "x-agency-id": agency})
    assert response.status_code == (200 if not agency else 403), (agency, response.text)  # blank: the single membership


def test_fuzzing_left_no_traceback_and_no_500_in_the_api_log(world):
    """Runs after the fuzz tests (file order): what the API logged during this module has no traceback."""
    written = world.log_since(world.log_start)
    assert "Traceback" not in written and "Internal server error" not in written and " failed: " not in written, written[-2000:]


# --- the one mapping, and the boundary for what it does not know ------------------------------------------


def _database_error(database_url: str, sql: str, *args):
    async def go(conn):
        try:
            await conn.execute(sql, *args)
        except Exception as exc:  # noqa: BLE001 - the error is what this helper returns
            return exc
        raise AssertionError(f"no error from {sql}")

    return run(database_url, go)


def test_database_errors_from_request_values_map_to_4xx_without_quoting_them(sync_db):
    from pmsops.sandbox.api import error_response

    agency = uuid.uuid4()
    insert = "INSERT INTO channel_connections (agency_id, property_id, platform_type, platform_listing_id, status) VALUES ($1, $2, $3, $4, $5)"
    cases = {
        "foreign key": (_database_error(sync_db, insert, agency, uuid.uuid4(), "airbnb", "L", "active"), 422, ["body", "property_id"]),
        "check": (_database_error(sync_db, insert, agency, None, "airbnb", "L", "bogus-status"), 422, ["body", "status"]),
        "not null": (_database_error(sync_db, insert, agency, None, "airbnb", None, "active"), 422, ["body", "platform_listing_id"]),
        "NUL byte": (_database_error(sync_db, "SELECT $1::text", "a\x00b"), 422, ["request"]),
        "NUL in json": (_database_error(sync_db, "SELECT $1::text::jsonb", '{"k": "\\u0000"}'), 422, ["request"]),
        "int64 overflow": (_database_error(sync_db, "SELECT 1 OFFSET $1", 99999999999999999999), 422, ["request"]),
        "int32 overflow": (_database_error(sync_db, "SELECT $1::int", 2**40), 422, ["request"]),
        "missing table": (_database_error(sync_db, "SELECT * FROM no_such_table_xyz"), 503, None),
    }
    for name, (exc, status, loc) in cases.items():
        mapped = error_response(exc)
        assert mapped is not None and mapped[0] == status, (name, type(exc).__name__, mapped)
        if loc:
            assert mapped[1]["detail"][0]["loc"] == loc, (name, mapped)
        assert "bogus-status" not in str(mapped) and "a\x00b" not in str(mapped) and "99999999999999999999" not in str(mapped), name
    duplicate = _database_error(sync_db, "INSERT INTO agencies (id, name) VALUES ($1, 'x'), ($1, 'y')", agency)
    assert error_response(duplicate) == (409, {"detail": "Conflicts with an existing record"})
    assert error_response(UnicodeEncodeError("utf-8", "a\ud800", 1, 2, "surrogates not allowed"))[0] == 422  # driver, hash, cipher
    assert error_response(RuntimeError("a bug")) is None


def test_an_unexpected_error_is_a_generic_500_and_one_log_line_without_values(caplog):
    """A route with a bug, behind the same ErrorBoundary, served by uvicorn on loopback."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    from pmsops.sandbox.api import ErrorBoundary
    from pmsops.sandbox.servers import free_port

    app = FastAPI()
    app.add_middleware(ErrorBoundary)

    @app.get("/boom/{item}")
    async def boom(item: str):
        raise RuntimeError(f"password=Hunter2-{item} leaked through a bug")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with caplog.at_level("WARNING"):
            response = httpx.get(f"http://127.0.0.1:{port}/boom/value-xyz", timeout=5)
    finally:
        server.should_exit = True
        thread.join(5)
    body = response.json()
    assert response.status_code == 500 and body["detail"] == "Internal server error" and len(body["error_id"]) == 12
    records = [r for r in caplog.records if r.levelno >= 30]
    assert [r.getMessage() for r in records] == [f"GET /boom/{{item}} failed: RuntimeError (error id {body['error_id']})"]
    assert records[0].exc_info is None  # no traceback: it would quote the values
    assert "Hunter2" not in caplog.text and "value-xyz" not in caplog.text


@pytest.mark.parametrize("exists", [True, False], ids=["existing-email", "unknown-email"])
def test_a_login_does_the_same_password_work_whether_the_email_exists_or_not(monkeypatch, exists):
    """The reference API's login time revealed which emails exist (scrypt only for existing ones, #23 item 8)."""
    import hashlib

    from pmsops.sandbox import auth

    stored = auth.hash_password("the right one") if exists else None
    auth.verify_login(None, "warm-up")  # the unknown-user hash is made once per process
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))

    assert auth.verify_login(stored, "a wrong one") is False
    assert len(calls) == 1
