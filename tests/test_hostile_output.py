"""Outside data never drives the terminal (#23 item 1, item 5): API fields and platform errors carrying escape
sequences, bidi overrides, zero-width characters and lone surrogates are shown as visible escapes, in text and
in JSON, and never empty a report."""

from __future__ import annotations

import json
import uuid

import pytest

PAYLOADS = {
    "osc52-clipboard": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "clear-screen": "\x1b[2J\x1b[H",
    "fake-green-ok": "\x1b[32m✓ ALL OK\x1b[0m",
    "osc8-link": "\x1b]8;;http://evil.invalid\x1b\\click\x1b]8;;\x1b\\",
    "c1-csi": "\x9b31mred",
    "carriage-return": "error\rALL GOOD",
    "right-to-left-override": "cod\u202egnp.exe",
    "zero-width": "air\u200bbnb\u2060",
    "line-separator": "one\u2028two",
    "lone-surrogate": "broken \ud800 text",
}
STEERING = set("\x1b\x07\x9b\r\u202e\u200b\u2060\u2028\ud800")


def _serve_connections(http_stub, monkeypatch, text: str) -> str:
    cid = str(uuid.uuid4())
    http_stub.json("/api/v1/channel-connections/", [{"id": cid, "platform_type": text, "status": "active", "platform_listing_id": text}])
    page = {
        "connection_id": cid,
        "limit": 20,
        "offset": 0,
        "logs": [
            {
                "id": str(uuid.uuid4()),
                "operation_type": "availability_update",
                "direction": "outbound",
                "status": "failed",
                "created_at": "2026-12-07T10:00:00Z",
                "updated_at": "2026-12-07T10:00:01Z",
                "details": {"error_type": "platform_error", "platform": text},
                "error": f"Platform error after 3 retries: {text}",
                "task_id": "t1",
            }
        ],
    }
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", page)
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    return cid


def _assert_shown_not_obeyed(result, text: str) -> None:
    output = result.stdout + result.stderr
    assert sorted(ch for ch in STEERING if ch in output) == []
    assert "Traceback" not in output


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
@pytest.mark.parametrize("command", ["connections list", "sync logs"])
def test_hostile_api_text_is_shown_escaped_in_text_output(cli, http_stub, monkeypatch, payload, command):
    cid = _serve_connections(http_stub, monkeypatch, payload)

    result = cli(*command.split(), *([cid] if command == "sync logs" else []))

    assert result.exit_code == (0 if command == "connections list" else 1), result.output
    _assert_shown_not_obeyed(result, payload)


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
@pytest.mark.parametrize("command", ["connections list", "sync logs"])
def test_hostile_api_text_never_empties_or_breaks_the_json_report(cli, http_stub, monkeypatch, payload, command):
    cid = _serve_connections(http_stub, monkeypatch, payload)

    result = cli(*command.split(), *([cid] if command == "sync logs" else []), "--json")

    report = json.loads(result.stdout)
    assert report["exit_code"] == (0 if command == "connections list" else 1)
    _assert_shown_not_obeyed(result, payload)
    first = next(ch for ch in payload if ch in STEERING)
    escape = f"\\x{ord(first):02x}" if ord(first) < 0x100 else f"\\u{ord(first):04x}"
    assert escape in json.dumps(report, ensure_ascii=False)  # shown, as an escape a person can read
