"""Named contexts: one env file per deployment, chosen by name (as kubectl, docker and gh do).

``pmsops context add prod --env-file /root/pms_env.sh`` stores the *path* of the env
file (never its contents: secrets stay where they are), ``pmsops context use prod``
makes it the default, ``--context staging`` picks one for a single run. The store is
``$XDG_CONFIG_HOME/pmsops/contexts.json`` (else ``~/.config/pmsops``): a 0700
directory and a 0600 file, written through :mod:`pmsops.safefile` (never through a
planted link). The active context is named in every report header.

Which env file a run uses, first match wins: ``--env-file``, ``--context NAME``,
``PMSOPS_CONTEXT`` (when it names a stored context), ``PMSOPS_ENV_FILE``, the
context chosen with ``context use`` (refused while ``PMSOPS_CONTEXT`` names another, unknown context: a typo
never runs against a different deployment).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pmsops.errors import UsageError

STORE_NAME = "contexts.json"
STORE_LIMIT = 256 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


@dataclass
class Store:
    current: str | None = None
    contexts: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """What this run uses: the env file (or none), the context's name (or none) and why."""

    env_file: str | None
    context: str | None
    source: str


def config_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pmsops"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise UsageError(f"context name {name!r}: use letters, digits, '.', '_' or '-' (at most 48, starting with a letter or digit)")
    return name


def load(environ: Mapping[str, str]) -> Store:
    """The stored contexts; an absent store is empty, a damaged one is bad input (exit 2)."""
    from pmsops.safefile import check_trusted_file, read_regular

    path = config_dir(environ) / STORE_NAME
    try:
        check_trusted_file(path, "context store")  # it chooses the env file a command (even root's) runs with
        raw = read_regular(path, STORE_LIMIT, "context store")
    except FileNotFoundError:
        return Store()
    except PermissionError:
        raise UsageError(f"cannot read the context store {path}: permission denied") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        contexts = {str(k): {"env_file": str(v["env_file"])} for k, v in dict(data.get("contexts") or {}).items()}
        current = data.get("current")
    except (ValueError, TypeError, KeyError, AttributeError):
        raise UsageError(f"the context store {path} is not valid JSON written by pmsops", hint=f"fix or remove it: rm {path}") from None
    for name in contexts:
        check_name(name)  # names are re-read, not trusted: they reach file names and terminals
    return Store(current if current in contexts else None, contexts)


def save(store: Store, environ: Mapping[str, str]) -> Path:
    """Write the store: directory 0700 (created with its parents), file 0600, never through a link."""
    from pmsops.safefile import private_directory, write_text

    directory = config_dir(environ)
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_directory(directory)
    payload = {"current": store.current, "contexts": store.contexts}
    return write_text(directory / STORE_NAME, json.dumps(payload, indent=2, sort_keys=True) + "\n", "context store")


def add(name: str, env_file: str, environ: Mapping[str, str], use: bool = False) -> Store:
    """Remember ``env_file`` (absolute path, must be a readable regular file) as ``name``."""
    from pmsops.envfile import load_env_file

    check_name(name)
    path = os.path.abspath(os.path.expanduser(env_file))
    load_env_file(path, base=environ)  # bad or missing file: the one-line error now, not at 3 a.m.
    store = load(environ)
    store.contexts[name] = {"env_file": path}
    if use or store.current is None:
        store.current = name
    save(store, environ)
    return store


def use(name: str, environ: Mapping[str, str]) -> Store:
    store = load(environ)
    if name not in store.contexts:
        raise UsageError(f"no context named {name!r}", hint=_known(store))
    store.current = name
    save(store, environ)
    return store


def remove(name: str, environ: Mapping[str, str]) -> Store:
    store = load(environ)
    if name not in store.contexts:
        raise UsageError(f"no context named {name!r}", hint=_known(store))
    del store.contexts[name]
    if store.current == name:
        store.current = None
    save(store, environ)
    return store


def _known(store: Store) -> str:
    if not store.contexts:
        return "add one: pmsops context add NAME --env-file PATH"
    return "known contexts: " + ", ".join(sorted(store.contexts))


def select(env_file: str | None, context: str | None, environ: Mapping[str, str]) -> Selection:
    """Which env file and context name this run uses (see the module docstring for the order)."""
    env = environ
    if env_file:
        return Selection(env_file, context, "--env-file")
    if context:
        store = load(env)
        if context not in store.contexts:
            raise UsageError(f"--context {context}: no such context", hint=_known(store))
        return Selection(store.contexts[context]["env_file"], context, "--context")
    named = env.get("PMSOPS_CONTEXT")
    store: Store | None = None
    if named:
        store = load(env)
        if named in store.contexts:
            return Selection(store.contexts[named]["env_file"], named, "PMSOPS_CONTEXT")
    if env.get("PMSOPS_ENV_FILE"):
        return Selection(env["PMSOPS_ENV_FILE"], None, "PMSOPS_ENV_FILE")
    store = store or load(env)
    if store.current:
        if named and named != store.current:
            # a label for CI where no context is stored; here it names none of them, and `context use` would pick another:
            # a typo of "prod" must not run against staging
            raise UsageError(
                f"PMSOPS_CONTEXT={named} names no stored context, and the one chosen with 'context use' is {store.current}",
                hint=f"{_known(store)}; pass --context NAME, or unset PMSOPS_CONTEXT",
            )
        return Selection(store.contexts[store.current]["env_file"], store.current, "context use")
    return Selection(None, None, "environment")
