"""``sandbox.json``: what ``sandbox up`` started and created, as typed records.

The file outlives the processes it names (``down`` after a crash or a reboot), so
it is parsed strictly: a field of the wrong type is a one-line refusal (exit 2)
naming the field, never a traceback, and never a pid or path used as-is. The JSON
keeps the layout earlier versions wrote (``components.NAME.pid`` …), so ``down``
works on a state file written before this module existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmsops.errors import UsageError
from pmsops.sandbox.processes import Child, start_time

_COMPONENT_FIELDS: dict[str, type] = {"pid": int, "started": str, "port": int, "argv": list, "log": str, "workdir": str, "basedir": str}


@dataclass
class Component:
    """One process of the stack: its identity, its port, and what restarts it (``argv`` for Python children,
    ``workdir`` for redis-server, ``basedir`` for the PostgreSQL cluster)."""

    pid: int | None = None
    started: str | None = None
    port: int | None = None
    argv: list[str] | None = None
    log: str | None = None
    workdir: str | None = None
    basedir: str | None = None

    @classmethod
    def launched(cls, pid: int, **where: Any) -> "Component":
        """A component just started as ``pid`` (its start time recorded now), at ``where`` (port, argv, log…)."""
        return cls(pid, start_time(pid), **where)

    def relaunched(self, pid: int) -> None:
        """The same component, started again as ``pid``."""
        self.pid, self.started = pid, start_time(pid)

    @property
    def child(self) -> Child:
        return Child(self.pid, self.started)

    def running(self) -> bool:
        """Still the process we started (a reused pid is not)?"""
        return self.child.running()

    def to_json(self) -> dict[str, Any]:
        """``pid`` and ``port`` always (null before start), the rest when set."""
        out: dict[str, Any] = {"pid": self.pid, "port": self.port}
        out.update({name: getattr(self, name) for name in ("started", "argv", "log", "workdir", "basedir") if getattr(self, name) is not None})
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Component":
        if not isinstance(data, dict):
            raise _bad(where, "an object")
        values: dict[str, Any] = {}
        for name, kind in _COMPONENT_FIELDS.items():
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is list and not all(isinstance(a, str) for a in value)):
                raise _bad(f"{where}.{name}", "a list of strings" if kind is list else f"{'an integer' if kind is int else 'a string'}")
            values[name] = value
        if values.get("pid") is not None and values["pid"] <= 0:
            raise _bad(f"{where}.pid", "a positive integer")
        return cls(**values)


@dataclass
class SandboxState:
    """The whole file: the directory, what was created in it (removed by ``down``), components, env, seed."""

    directory: str
    created_directory: bool = False
    created: list[Any] = field(default_factory=list)  # names are checked where they are removed
    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    external_db: bool = False
    users: dict[str, str] | None = None
    seed: dict[str, Any] | None = None

    def running(self) -> list[str]:
        """Names of the components still running as the processes we started."""
        return [name for name, comp in self.components.items() if comp.running()]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "directory": self.directory,
            "created_directory": self.created_directory,
            "created": self.created,
            "components": {name: comp.to_json() for name, comp in self.components.items()},
            "env": self.env,
            "external_db": self.external_db,
        }
        if self.users is not None:
            out["users"] = self.users
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    @classmethod
    def from_json(cls, data: Any, path: Path) -> "SandboxState":
        """Parse a loaded ``sandbox.json``; a wrong shape is a UsageError naming the field."""
        try:
            return cls._parse(data)
        except _Bad as exc:
            raise UsageError(f"sandbox state {path} is not in the expected format: {exc}", hint="remove the directory by hand") from None

    @classmethod
    def _parse(cls, data: Any) -> "SandboxState":
        if not isinstance(data, dict):
            raise _bad("the file", "a JSON object")
        components = _typed(data, "components", dict, {})
        env = _typed(data, "env", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise _bad("env", "an object of strings")
        return cls(
            directory=str(data.get("directory") or ""),
            created_directory=bool(data.get("created_directory")),
            created=_typed(data, "created", list, []),
            env=env,
            external_db=bool(data.get("external_db")),
            components={str(name): Component.from_json(comp, f"components.{name}") for name, comp in components.items()},
            users=_typed(data, "users", dict, None),
            seed=_typed(data, "seed", dict, None),
        )


class _Bad(ValueError):
    pass


def _bad(where: str, expected: str) -> _Bad:
    return _Bad(f"{where} must be {expected}")


def _typed(data: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _bad(key, {dict: "an object", list: "a list"}[kind])
    return value
