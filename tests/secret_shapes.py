"""The shapes in which logs, configs and command lines carry a secret, for the secret sweeps.

Each shape turns a secret into one line the way the software that prints it would
(shell quoting for ``set -x`` traces, Redis's config quoting, Python's ``repr``,
JSON with PHP/Java-style ``\\/``). The redactor must mask the value in every shape
*without knowing it*: on a real host a password in a container log is not
registered anywhere. :func:`forms` lists what must never appear in any output.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote, quote_plus

UNKNOWN_SENTINELS = {
    "runbook-specials": "Lq8+=@:/?#&%ßv",
    "quotes-and-dollar": "Qx'7\"Lm\\z$`w",
    "plain-token": "pR0dT0k3nx9Wq",
}
"""Values no test registers: only the patterns can catch them."""
BLANK_SENTINEL = "Sp4ce pa55 wd"
"""A password with blanks: only shapes that quote it (or a URL's userinfo) can delimit it."""


def _conf_quote(value: str) -> str:
    """redis.conf double-quoted string (sdssplitargs)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _monitor_quote(value: str) -> str:
    """How ``redis-cli MONITOR`` prints an argument (quotes and backslashes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Shape:
    id: str
    build: Callable[[str], str]
    delimits_blanks: bool
    """Whether the shape quotes a value holding blanks (else a blank ends the value for any reader)."""
    fingerprinted: bool = True
    """Whether ``host logs`` shows the value's fingerprint in its place (URLs show ``***``)."""


SHAPES: tuple[Shape, ...] = (
    Shape("redis-cli -a", lambda x: f"+ redis-cli -h coolify-redis -p 6379 -a {shlex.quote(x)} ping", True),
    Shape("requirepass X", lambda x: f"requirepass {x}", False),
    Shape('requirepass "X" (redis.conf)', lambda x: f"requirepass {_conf_quote(x)}", True),
    Shape("--requirepass 'X'", lambda x: f"exec redis-server --appendonly yes --requirepass {shlex.quote(x)} --save 60 1", True),
    Shape("--requirepass 'X' (always quoted)", lambda x: "redis-server --requirepass '" + x.replace("'", "'\"'\"'") + "'", True),
    Shape("AUTH default X", lambda x: f"AUTH default {x}", False),
    Shape("AUTH X", lambda x: f"AUTH {x}", False),
    Shape("MONITOR AUTH", lambda x: f'1767011400.1 [0 10.0.1.7:51234] "AUTH" "default" {_monitor_quote(x)}', True),
    Shape("PASSWORD: X", lambda x: f"PASSWORD: {x}", False),
    Shape("password = X", lambda x: f"password = {x}", False),
    Shape("password=X in a DSN", lambda x: f"host=supabase-db user=postgres password={x} dbname=postgres", False),
    Shape('YAML password: "X"', lambda x: f"  password: {_yaml_quote(x)}", True),
    Shape("dict {'password': 'X'}", lambda x: f"connect kwargs {{'host': 'coolify-redis', 'password': {x!r}, 'db': 0}}", True),
    Shape("kwargs password='X'", lambda x: f"Redis(host='coolify-redis', password={x!r}, db=0)", True),
    Shape('JSON "api_key": "X"', lambda x: "payload " + json.dumps({"api_key": x, "n": 1}, ensure_ascii=False), True),
    Shape(
        "JSON-escaped URL redis:\\/\\/:X@h",
        lambda x: json.dumps({"broker": f"redis://:{x}@coolify-redis:6379/0"}, ensure_ascii=False).replace("/", "\\/"),
        True,
        False,
    ),
    Shape("URL with a raw blank", lambda x: f"Cannot connect to redis://:{x}@coolify-redis:6379/0: retrying", True, False),
    Shape("Authorization: Basic", lambda x: "Authorization: Basic " + base64.b64encode(f"default:{x}".encode()).decode(), True, False),
    Shape("Authorization: Bearer", lambda x: f"Authorization: Bearer {x}", False),
    Shape("apikey: X", lambda x: f"apikey: {x}", False),
    Shape("X-Api-Key: X", lambda x: f"X-Api-Key: {x}", False),
    Shape("SQL WITH PASSWORD 'X'", lambda x: "statement: ALTER ROLE pms WITH PASSWORD '" + x.replace("'", "''") + "';", True),
    Shape("--password X", lambda x: f"pg_dump --host supabase-db --password {shlex.quote(x)} pms", True),
)


def cases() -> list[tuple[str, Shape, str]]:
    """(id, shape, secret) for every sentinel a shape can carry."""
    out = []
    for shape in SHAPES:
        for name, secret in UNKNOWN_SENTINELS.items():
            out.append((f"{shape.id}|{name}", shape, secret))
        if shape.delimits_blanks:
            out.append((f"{shape.id}|blank", shape, BLANK_SENTINEL))
    return out


def forms(secret: str) -> dict[str, str]:
    """Every spelling of ``secret`` that would be a leak."""
    return {
        "raw": secret,
        "quote(safe='')": quote(secret, safe=""),
        "quote()": quote(secret),
        "quote_plus()": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
        "base64 of default:secret": base64.b64encode(f"default:{secret}".encode()).decode().rstrip("="),
        "JSON-escaped": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON-escaped ASCII": json.dumps(secret)[1:-1],
        "its first 5 characters": secret[:5],
        "its last 5 characters": secret[-5:],
    }


def leaks(text: str, secret: str) -> list[str]:
    """Names of the forms of ``secret`` found in ``text``."""
    return [name for name, form in forms(secret).items() if form and form in text]


ORDINARY_LINES = (
    "[2025-12-29 12:00:01,000: INFO/MainProcess] celery@pms-worker-v2 ready.",
    "[2025-12-29 12:00:01,000: INFO/MainProcess] Connected to redis://coolify-redis:6379/0",
    "redis-cli -h coolify-redis -p 6379 ping",
    "psql -h supabase-db -p 5432 -U postgres --no-password -c 'select 1'",
    "Task app.channel_manager.core.sync_engine.update_channel_availability[9f1c] succeeded in 0.12s: None",
    "passed 3 tests, 0 failed",
    "listening on port 6379",
    "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.",
    'FATAL:  password authentication failed for user "postgres"',
    "requirepass is not set: authentication is off",
    "Basic configuration loaded from /app/celeryconfig.py",
    "exchange=celery routing_key=celery delivery_mode=2",
    "tokens: 5 of 10 left in the bucket",
    "docker login --password-stdin registry.example.com",
    "PWD=/app",
    "password_hash=argon2 rounds=3",
)
"""Log lines with secret-ish words but no secret: the redactor must leave them exactly as they are."""
