"""The author's split of a URL: the one place that hand-parses one (a leaf: no pmsops imports).

The userinfo runs to the **last** ``@`` and nothing is decoded: what the operator wrote, before any client
library reads it its own way (:mod:`pmsops.urlread`). The redactor masks URLs with it, so it must not depend
on anything that redacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MASK = "***"
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_NOT_IN_USER_NAMES = set("/?#[]@ \t\r\n\\;,")
_PASSWORD_ONLY_SCHEMES = ("redis", "unix", "amqp", "socket")
"""Schemes whose colon-less userinfo is almost always a password without its ':' (Redis has no user by default)."""


@dataclass(frozen=True)
class RawUrl:
    """A URL as its author meant it: the userinfo runs to the *last* ``@``; nothing decoded."""

    scheme: str
    userinfo: str | None
    user: str | None
    password: str | None
    hostpart: str
    """Everything after the userinfo: ``host:port/db?query``."""

    @property
    def hostport(self) -> str:
        return re.split(r"[/?#]", self.hostpart, maxsplit=1)[0]

    @property
    def host(self) -> str:
        """The host as written (no port, IPv6 brackets removed); '' when there is none."""
        hostport = self.hostport
        if hostport.startswith("["):
            end = hostport.find("]")
            return hostport[1:end] if end > 0 else hostport
        return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def split_raw(url: str) -> RawUrl | None:
    """The author's split of ``url``; ``None`` when it has no ``scheme://``."""
    text = url.strip()
    match = SCHEME.match(text)
    if not match:
        return None
    rest = text[match.end() :]
    userinfo = user = password = None
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        user, colon, after = userinfo.partition(":")
        password = after if colon else None
    return RawUrl(match.group(1), userinfo, user, password, rest)


def _plausible_user(user: str) -> bool:
    """A user name has none of the characters that mark a piece of a raw password."""
    return bool(user) and not any(c in _NOT_IN_USER_NAMES or ord(c) < 32 for c in user)
