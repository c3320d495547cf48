"""Outside data never reaches a terminal, a file or a JSON consumer raw (#23 item 1), through every command.

The list of commands is the Typer tree's: a new command fails ``test_every_command_is_proven_or_has_no_outside_data``
until it is run against hostile text below, in another test named here, or said to print no outside data. Each
source is real: an HTTP server on loopback answering as the API and GoTrue, a kombu pidbox node on a real Redis
answering as a worker, a worker log file, container output replayed in Docker's formats. What is checked: no
steering character (C0/C1 controls but newline and tab, bidi and zero-width characters, line separators, lone
surrogates) in stdout, stderr, a JUnit file, the report's files; JSON parses, and its decoded strings hold none
either (``jq -r`` prints them).
"""

from __future__ import annotations

import ast
import json
import re
import tarfile
import uuid
from pathlib import Path

import click
import jwt
import pytest
import typer

import pmsops
from host_helpers import fake_docker  # noqa: F401
from pmsops.cli.main import app

PAYLOADS = {
    "every class at once": "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b[32m✓ ALL OK\x1b[0m\r\u202egnp.exe\u200b\x9b2J \ud800 end",
    "escape sequences": "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b]8;;http://evil.invalid\x1b\\link\x1b]8;;\x1b\\",
    "a fake green ok": "\x1b[32m✓ ALL OK\x1b[0m\rdone\x08",
    "bidi, zero-width, separators": "cod\u202egnp.exe\u200b\u2066x\u2069\u2028y\ufeff",
    "C1 controls and a lone surrogate": "\x9b2J\x85\x90q\x9c \ud800 end",
}
EACH_PAYLOAD = [pytest.param(text, id=name, marks=() if i == 0 else pytest.mark.slow) for i, (name, text) in enumerate(PAYLOADS.items())]
"""make test runs the first payload through every command, make test-full all four."""
LONE = "\ud800"
STEERING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")

NO_OUTSIDE_DATA = {
    "encode-redis-password": "the operator's own password, encoded",
    "compare-password-hash": "fingerprints and pmsops's verdict",
    "explain": "the runbook's reference text",
    "help": "pmsops's help",
    "redis-url check": "the operator's URLs, masked, and pmsops's verdicts",
    "context add": "names are validated (letters, digits, . _ -) on write and on read",
    "context use": "names are validated on write and on read",
    "context remove": "names are validated on write and on read",
    "context list": "names are validated on write and on read",
    "sandbox up": "pmsops's own reference stack",
    "sandbox status": "pmsops's own reference stack",
    "sandbox down": "pmsops's own reference stack",
    "sandbox stop": "pmsops's own reference stack",
    "sandbox start": "pmsops's own reference stack",
    "demo": "pmsops's own reference stack",
    "worker-start": "execs the worker; its words before that are pmsops's",
    "db migrate": "pmsops's migrations; a server's error passes the render edge",
}
ELSEWHERE = {
    "exporter": "test_exporter.py::test_label_values_read_from_the_sync_log_are_inert_and_bounded",
    "doctor": "test_doctor.py (every result passes the render edge checked below)",
    "wait-for-deps": "test_url_secrets.py (servers' errors pass the render edge checked below)",
    "worker-check": "test_container_worker.py (as doctor)",
    "check redis": "test_check_redis.py (server replies through the render edge)",
    "check db": "test_check_db.py (server replies through the render edge)",
    "db check": "test_sync_schema.py (schema names read from the server, through the render edge)",
    "sync run": "test_sync_tasks.py (platform errors cleaned where they enter: test_a_platform_error_is_stored_inert below)",
    "sync reap": "test_sync_claims.py (sync log text cleaned where it enters)",
    "host redis-password": "test_host_redis_password.py (container config through the render edge)",
    "host worker-cmd": "test_host_worker_cmd.py",
    "host networks": "test_host_networks.py",
    "host code-hash": "test_host_code_hash.py",
    "host env-diff": "test_host_envdiff.py (names and fingerprints only)",
    "host check": "test_host_check.py",
    "env diff": "test_host_envdiff.py (names and fingerprints only)",
}


def leaf_commands() -> set[str]:
    root = typer.main.get_command(app)

    def walk(group: click.Group, prefix: tuple[str, ...]):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if isinstance(sub, click.Group):
                yield from walk(sub, prefix + (name,))
            else:
                yield " ".join(prefix + (name,))

    return set(walk(root, ()))


def assert_inert(*texts: str) -> None:
    found = sorted({f"U+{ord(ch):04X}" for text in texts for ch in STEERING.findall(text)})
    assert found == [], texts


def assert_json_inert(stdout: str) -> None:
    payload = json.loads(stdout)

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield str(key)
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    assert_inert(stdout, *strings(payload))


# --- the API and GoTrue -------------------------------------------------------------------------------------------


@pytest.fixture
def hostile_api(http_stub, monkeypatch):
    """The API and GoTrue on loopback, every field they send carrying ``payload`` (set per test)."""

    def serve(payload: str) -> str:
        cid = str(uuid.uuid4())
        token = jwt.encode({"sub": str(uuid.uuid4()), "email": payload, "aud": "authenticated", "role": payload}, "k" * 32, algorithm="HS256")
        http_stub.json("/auth/v1/token", {"access_token": token, "token_type": "bearer", "expires_in": 3600})
        http_stub.json("/health/ready", {"status": payload, "components": {payload: {"status": "down", "error": payload}}}, status=503)
        http_stub.json("/api/v1/channel-connections/", [{"id": cid, "platform_type": payload, "status": payload, "platform_listing_id": payload}])
        http_stub.json(f"/api/v1/channel-connections/{cid}/sync", {"status": payload, "message": payload, "task_ids": [payload]})
        log = {
            "id": str(uuid.uuid4()),
            "operation_type": payload,
            "direction": "outbound",
            "status": "failed",
            "created_at": "2026-12-07T10:00:00Z",
            "updated_at": "2026-12-07T10:00:01Z",
            "details": {"error_type": payload},
            "error": f"Platform error after 3 retries: {payload}",
            "task_id": payload,
        }
        http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", {"connection_id": cid, "limit": 20, "offset": 0, "logs": [log]})
        for key, value in {
            "PMS_API_URL": http_stub.url,
            "SUPABASE_URL": http_stub.url,
            "SUPABASE_ANON_KEY": "anon-key-for-tests",
            "EMAIL": "ops@example.com",
            "PASSWORD": "pw-for-tests-1",
            "CID": cid,
        }.items():
            monkeypatch.setenv(key, value)
        return cid

    return serve


API_RUNS = {
    "token": ["token"],
    "check health": ["check", "health"],
    "connections list": ["connections", "list"],
    "sync logs": ["sync", "logs", "{cid}"],
    "sync trigger": ["sync", "trigger", "{cid}"],
    "smoke": ["smoke", "--wait", "1"],
}


@pytest.mark.parametrize("payload", EACH_PAYLOAD)
@pytest.mark.parametrize("command", list(API_RUNS))
def test_hostile_api_and_gotrue_text_is_shown_inert_in_text_json_and_junit(cli, hostile_api, tmp_path, command, payload):
    cid = hostile_api(payload)
    args = [a.format(cid=cid) for a in API_RUNS[command]]
    text = cli(*args)
    as_json = cli(*args, "--json")
    assert "Traceback" not in text.output + as_json.output
    assert_inert(text.stdout, text.stderr, as_json.stderr)
    assert_json_inert(as_json.stdout)
    if command == "smoke":
        junit = tmp_path / "smoke.xml"
        cli(*args, "--junit", str(junit))
        assert_inert(junit.read_text(encoding="utf-8"))


# --- a worker on the broker ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", EACH_PAYLOAD)
def test_a_worker_whose_name_and_tasks_carry_escapes_is_shown_inert_by_celery_and_top(cli, worker_broker, payload):
    from pidbox_peer import ForgedNode

    task = {"id": payload, "name": payload, "args": [payload], "hostname": payload, "time_start": 1.0, "acknowledged": True}
    answers = {"ping": {"ok": "pong"}, "stats": {"pid": 1, "pool": {"max-concurrency": 1}}, "active": [task], "registered": [payload]}
    node = ForgedNode(worker_broker, f"w{payload.replace(LONE, '')}@pmsops-test", answers)  # a queue name cannot hold one
    try:
        node.ready.wait(5)
        outputs = [
            cli("celery", c, "--broker", worker_broker, "--timeout", "2", *j)
            for c in ("ping", "stats", "active", "registered")
            for j in ((), ("--json",))
        ]
        top = cli("top", "--once", "--broadcast-timeout", "2", env={"CELERY_BROKER_URL": worker_broker, "COLUMNS": "160"})
        top_json = cli("top", "--json", "--broadcast-timeout", "2", env={"CELERY_BROKER_URL": worker_broker})
    finally:
        node.close()
    for result in outputs + [top, top_json]:
        assert "Traceback" not in result.output
        assert_inert(result.stdout, result.stderr)
    assert_json_inert(top_json.stdout)
    shown = json.loads(outputs[1].stdout)["results"][0]["details"]["workers"]
    assert [name.endswith("@pmsops-test") for name in shown if "\\" in name] == [True]  # shown escaped, not hidden


# --- files: a worker log into a report, container output ----------------------------------------------------------


def test_a_worker_log_with_escapes_gives_a_report_whose_every_file_is_inert(cli, tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("".join(f"[2026-12-08 01:00:00,000: ERROR/MainProcess] Traceback {p}\n" for p in PAYLOADS.values()), errors="surrogatepass")
    out = tmp_path / "out"
    out.mkdir()
    done = cli("report", "--worker-log", str(log), "--output", str(out), "--no-docker", "--json", "--timeout", "2")
    assert "Traceback (most recent" not in done.output
    assert_inert(done.stderr)
    assert_json_inert(done.stdout)
    with tarfile.open(json.loads(done.stdout)["path"]) as tar:
        members = {m.name: tar.extractfile(m).read().decode("utf-8") for m in tar.getmembers() if m.isfile()}
    assert any(name.endswith("evidence/worker-logs.txt") for name in members)
    for name, content in members.items():
        assert_inert(content) if not name.endswith(".json") else assert_json_inert(content)


@pytest.mark.parametrize("payload", EACH_PAYLOAD)
def test_container_output_with_escapes_is_quoted_inert_by_host_logs(cli, fake_docker, payload):  # noqa: F811
    line = f"[2025-12-29 12:30:00,000: ERROR/MainProcess] Authentication required. {payload}\n"
    (fake_docker.root / "logs" / "pms-worker-v2.stderr").write_bytes(line.encode("utf-8", "surrogatepass"))  # bytes no decoder accepts
    text, as_json = cli("host", "logs"), cli("host", "logs", "--json")
    assert_inert(text.stdout, text.stderr, as_json.stderr)
    assert_json_inert(as_json.stdout)


@pytest.mark.parametrize("payload", EACH_PAYLOAD)
def test_a_platform_error_is_stored_inert_where_it_enters_the_sync_log(payload):
    from pmsops.sync.adapters.base import safe_snippet

    stored = safe_snippet(json.dumps({"error": payload, "message": payload * 10}))
    assert_inert(stored)
    assert len(stored) <= 120


# --- the rule, kept ---------------------------------------------------------------------------------------------


def test_every_command_is_proven_or_has_no_outside_data():
    covered = set(API_RUNS) | {"celery ping", "celery stats", "celery active", "celery registered", "top", "report", "host logs"}
    assert leaf_commands() - covered - set(NO_OUTSIDE_DATA) - set(ELSEWHERE) == set()
    assert (set(NO_OUTSIDE_DATA) | set(ELSEWHERE) | covered) - leaf_commands() == set()  # no stale entry


SOURCE = Path(pmsops.__file__).parent
_WRITERS = {"print", "echo", "write"}
_INERT = (
    "visible(",  # outside text made inert
    "render(",  # top's screen: visible_obj on the snapshot
    "traceback_text(",  # --debug's traceback: redacted and inert
    "__version__",  # pmsops's own version
    "get_help()",  # pmsops's own help (pmsops help CMD)
    "text if text.endswith(",  # click's no-args help text: pmsops's own help
)


def test_nothing_writes_around_the_inert_edge():
    """Every terminal write outside pmsops.render passes a constant or goes through visible() (or the renderer)."""
    loose = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "render.py" or path.parts[-2:] == ("cli", "lazy.py"):  # lazy.py's printer is a developer tool
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in _WRITERS:
                target = ast.unparse(node.func)
                if not re.search(r"(^print$|stdout|stderr|typer\.echo|click\.echo|console\.print)", target):
                    continue
                call = ast.unparse(node)
                if all(isinstance(arg, ast.Constant) for arg in node.args) or any(inert in call for inert in _INERT):
                    continue
                loose.append(f"{path.relative_to(SOURCE)}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert loose == []
