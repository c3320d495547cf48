"""Outside text made safe to show: characters that steer a terminal or hide text, written as visible escapes.

Platform error messages, API bodies, worker names, broker replies and container output reach the operator's
terminal, a Markdown report or a JSON consumer that prints with ``jq -r``. An ESC there starts an escape sequence
(OSC 52 writes the clipboard, OSC 8 hides a link, ``ESC[2J`` clears the screen, colours fake a green "ALL OK");
a right-to-left override or a zero-width character makes text read other than it is; a lone surrogate cannot be
encoded at all and would empty a JSON report. Every such character becomes ``\\xNN`` or ``\\uNNNN``: visible,
copyable, and never interpreted. Newline and tab stay where the format allows them. A leaf module: no pmsops imports.
"""

from __future__ import annotations

import re
from typing import Any

_STEERING = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but tab and newline) and C1 controls, DEL: ESC, CR, BEL, backspace, CSI (0x9b) …
    "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"  # bidi marks and overrides, zero-width characters, line/paragraph separators
    "\ud800-\udfff"  # lone surrogates (a str from a broken decode): not encodable
)
_UNSAFE = re.compile(f"[{_STEERING}]")
_UNSAFE_ONE_LINE = re.compile(f"[{_STEERING}\t\n]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, one_line: bool = False) -> str:
    """``text`` with every steering character written as an escape (``one_line``: newline and tab too)."""
    if not text:
        return text
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_escape, text)


def visible_obj(obj: Any) -> Any:
    """:func:`visible` on every string of a JSON-like structure, keys included."""
    if isinstance(obj, str):
        return visible(obj)
    if isinstance(obj, dict):
        return {visible_obj(key) if isinstance(key, str) else key: visible_obj(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [visible_obj(item) for item in obj]
    return obj
