"""The redaction rule settled in #23 item 6 and #24 item 1, the case the tool exists for: a password with special
characters written raw into a URL.

pmsops's own text (sentences, hints, command and option names) is never redacted; values inserted into it and text
from outside are. A secret is masked in every form an encoder gives it (repr of bytes and str, ``\\x``/``\\u`` escapes,
JSON with ``\\/``, percent-encoding full and partial, base64, hex) and by a prefix of 12 characters or more; a fragment
(a piece a parser cuts at a raw ``#``, ``/`` or ``@``) shorter than 8 characters is not masked inside other text.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pmsops
from pmsops.redaction import REDACTOR, redact, register_secret
from pmsops.urlread import register_url_secrets

SOURCE = Path(pmsops.__file__).parent

# Passwords whose pieces are words pmsops writes: the two, and others cut at '/', '@', ':', '?'.
PASSWORDS = [
    "Summer2024#pass",
    "Summer2024#redis",
    "Autumn7#connection/skipped",
    "Winter9@worker:token?password",
    "Spring5/hint#encode/requirepass",
]


def own_texts() -> list[tuple[str, str]]:
    """(module, text) for every string the package writes (f-strings' literal parts included), docstrings left out.
    The redaction module itself is left out: its constants are examples of secret shapes, there to be masked."""
    out = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "redaction.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value and id(node) not in docstrings:
                out.append((str(path.relative_to(SOURCE)), node.value))
    return out


@pytest.fixture
def fresh_redactor():
    REDACTOR.forget_all()
    yield
    REDACTOR.forget_all()


def test_no_sentence_hint_or_command_name_pmsops_writes_is_masked_by_a_raw_password_in_a_url(fresh_redactor):
    for password in PASSWORDS:
        register_url_secrets(f"redis://:{password}@127.0.0.1:6379/0")
        register_url_secrets(f"postgresql://pms:{password}@127.0.0.1:5432/pms")
    texts = own_texts()
    garbled = [(module, text, redact(text)) for module, text in texts if redact(text) != text]
    assert len(texts) > 2000 and garbled == []


@pytest.mark.parametrize("password", PASSWORDS)
def test_redis_url_check_on_a_raw_password_names_the_fix_in_whole_words(password, tmp_path):
    env = {**os.environ, "REDIS_URL": f"redis://:{password}@127.0.0.1:1/0", "NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "pmsops", "redis-url", "check"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode == 2
    assert "the password contains raw" in out and "redis-py cannot read" in out and "(pmsops encode-redis-password prints the encoded URL)" in out
    assert "***" not in out  # nothing of the password is in this line to mask, and no word of ours was
    assert password not in out and password.split("#")[0] not in out


@pytest.mark.parametrize("password", PASSWORDS[:2])
def test_compare_password_hash_mismatch_reads_in_whole_words(password, tmp_path):
    env = {**os.environ, "REDIS_URL": f"redis://:{password}@127.0.0.1:1/0", "NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "pmsops", "compare-password-hash", "--requirepass-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1
    assert "password-hash FAILED  mismatch: the URL's password is not Redis's requirepass" in out
    assert "encode it with pmsops encode-redis-password" in out
    assert password not in out and password.split("#")[0] not in out


def test_a_401_hint_keeps_its_command(fresh_redactor):
    assert redact("fetch a new token: pmsops token (tokens live about an hour)") == "fetch a new token: pmsops token (tokens live about an hour)"
    assert redact("token: eyJhbGciOi0123456789") != "token: eyJhbGciOi0123456789"  # a value there is still masked


# --- encoders -------------------------------------------------------------------------------------------------------

SECRET = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from("üäöéß€ñ漢字"), min_size=8, max_size=40).filter(
    lambda s: sum(c.isalnum() for c in s) >= 4
)


def encode_uri(value: str) -> str:
    """JavaScript's encodeURI: reserved characters stay, the rest is percent-encoded."""
    return "".join(c if c.isascii() and (c.isalnum() or c in ";,/?:@&=+$-_.!~*'()#") else quote(c, safe="") for c in value)


ENCODERS = {
    "repr of bytes": lambda s: repr(s.encode())[2:-1],
    "repr of str": lambda s: repr(s)[1:-1],
    "\\x and \\u escapes": lambda s: s.encode("ascii", "backslashreplace").decode(),
    "JSON with \\/": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "JSON, UTF-8, with \\/": lambda s: json.dumps(s, ensure_ascii=False)[1:-1].replace("/", "\\/"),
    "percent-encoded": lambda s: quote(s, safe=""),
    "percent-encoded, lower-case hex": lambda s: re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(s, safe="")),
    "percent-encoded partly (encodeURI)": encode_uri,
    "percent-encoded partly (non-ASCII only)": lambda s: "".join(c if c.isascii() else quote(c) for c in s),
    "quote_plus": quote_plus,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url unpadded": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "hex": lambda s: s.encode().hex(),
    "HEX": lambda s: s.encode().hex().upper(),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRET)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_a_secret_in_any_encoding_a_logger_applies_is_masked(fresh_redactor, encoder, secret):
    REDACTOR.forget_all()
    register_secret(secret)
    encoded = ENCODERS[encoder](secret)
    line = f"[worker] sent {encoded} to the platform"
    assert redact(line) == "[worker] sent *** to the platform"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRET.filter(lambda s: len(s) >= 14), cut=st.integers(min_value=12, max_value=40))
def test_a_prefix_of_12_characters_counts_as_the_secret(fresh_redactor, secret, cut):
    REDACTOR.forget_all()
    register_secret(secret)
    prefix = secret[: min(cut, len(secret) - 1)]
    assert redact(f"auth failed for '{prefix}…' (truncated)") == "auth failed for '***…' (truncated)"


def test_a_token_of_a_thousand_characters_is_masked_among_many_secrets(fresh_redactor):
    """The forms are one trie-shaped regex: a long token (a JWT is ~800 characters) must not nest 800 deep (it did:
    RecursionError in every command that registered a token)."""
    import secrets as random

    token = "eyJ" + random.token_urlsafe(750)
    for _ in range(50):
        register_secret(random.token_urlsafe(20))
    register_secret(token)
    register_secret(token[:-8] + "different")
    assert redact(f"Authorization token {token} sent") == "Authorization token *** sent"
