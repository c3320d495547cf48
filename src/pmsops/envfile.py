"""Read shell-style env files such as ``/root/pms_env.sh`` without executing them.

Understood: ``KEY=VALUE`` and ``export KEY=VALUE``; single quotes (literal),
double quotes (``\\"`` ``\\\\`` ``\\$`` escapes, ``$VAR``/``${VAR}`` expansion),
unquoted values (``$VAR`` expansion, `` # comment`` stripped); blank lines and
``#`` comments. Anything else (``echo …``, ``source …``) is skipped and reported,
because running it is exactly what we promise not to do; so is an assignment
whose value needs a command to run (``$(…)`` or backticks outside single quotes).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pmsops.errors import UsageError

_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class EnvFile:
    path: str
    values: dict[str, str] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    """Line numbers that were not assignments (never their text: it may hold a secret)."""


_ESCAPED_DOLLAR = "\0"
"""Stands for a ``\\$`` while ``$VAR`` is expanded (no env value can contain NUL)."""
_ESCAPED_BACKTICK = "\1"
"""Stands for a ``\\``` so it is not taken for command substitution."""


class _NeedsCommand(ValueError):
    """The value is a command substitution: only running it would give its value."""


def _expand(value: str, known: Mapping[str, str]) -> str:
    if "$(" in value or "`" in value:
        raise _NeedsCommand("command substitution")
    expanded = _VARIABLE.sub(lambda m: known.get(m.group(1) or m.group(2), ""), value)
    return expanded.replace(_ESCAPED_DOLLAR, "$")


def _parse_value(raw: str, known: Mapping[str, str]) -> str:
    raw = raw.strip()
    if raw.startswith("'"):
        end = raw.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        return raw[1:end]
    if raw.startswith('"'):
        out, i = [], 1
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\$`':
                out.append({"$": _ESCAPED_DOLLAR, "`": _ESCAPED_BACKTICK}.get(raw[i + 1], raw[i + 1]))
                i += 2
                continue
            if ch == '"':
                return _expand("".join(out), known).replace(_ESCAPED_BACKTICK, "`")
            out.append(ch)
            i += 1
        raise ValueError("unterminated double quote")
    value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
    return _expand(value, known)


def parse_env_text(text: str, path: str = "<text>", base: Mapping[str, str] | None = None) -> EnvFile:
    """Parse env-file text; ``base`` supplies variables that ``$VAR`` may refer to."""
    result = EnvFile(path)
    known: dict[str, str] = dict(base or {})
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.match(stripped)
        if not match:
            result.skipped.append(number)
            continue
        key, raw = match.groups()
        try:
            value = _parse_value(raw, known)
        except _NeedsCommand:
            result.skipped.append(number)
            continue
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: {exc} in the value of {key}") from None
        result.values[key] = value
        known[key] = value
    return result


MAX_ENV_FILE_BYTES = 1024 * 1024
"""An env file is a few kilobytes; 1 MiB leaves room and stops /dev/zero-style input at once."""


def load_env_file(path: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> EnvFile:
    """Read and parse ``path``; an unusable file is a usage error (exit 2), at once.

    Only a regular file of at most 1 MiB is read (never a FIFO, device or /proc file:
    see :func:`pmsops.safefile.read_regular`), and never more than that.
    """
    from pmsops.safefile import read_regular

    file = Path(path)
    try:
        data = read_regular(file, MAX_ENV_FILE_BYTES, "env file")
    except FileNotFoundError:
        raise UsageError(f"env file not found: {file}", hint="check the path passed to --env-file") from None
    except PermissionError:
        raise UsageError(f"env file not readable (permission denied): {file}", hint="run as a user that can read it, e.g. with sudo") from None
    except OSError as exc:
        raise UsageError(f"env file not readable: {file}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"env file is not UTF-8 text: {file}") from None
    return parse_env_text(text, str(file), base if base is not None else {})
