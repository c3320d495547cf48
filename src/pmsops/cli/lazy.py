"""Lazy command loading: ``pmsops`` imports and builds only the command it runs.

Building every command with Typer (parameter introspection for ~40 functions) and
importing every command module cost ~40-70 ms on each start-up, more than Typer
itself adds over Python. The root group (:class:`LazyGroup`) knows each top-level
command from :data:`CATALOG` (module, help panel, the help line ``pmsops --help``
shows) and asks the module to register its commands the first time one of them is
looked up. ``pmsops --help`` lists the catalog without importing anything;
tests/test_cli_lazy.py checks that the catalog says exactly what the modules
register (``python -m pmsops.cli.lazy`` prints the catalog from the modules).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Iterator

import click
from typer.core import TyperGroup

MODULES = ("offline", "live", "worker", "sync", "api", "host", "sandbox", "observe", "context")
"""Command modules in registration order (``pmsops --help`` lists their commands in this order)."""

CATALOG: dict[str, tuple[str, str | None, str]] = {
    # name: (module, help panel, help line shown by pmsops --help): what python -m pmsops.cli.lazy prints
    "encode-redis-password": (
        "offline",
        "Offline (runbook: Special Characters, Redis URL, HTTP Status Codes)",
        'URL-encode a Redis password (runbook: "Special Characters MUST Be URL-Encoded").',
    ),
    "compare-password-hash": (
        "offline",
        "Offline (runbook: Special Characters, Redis URL, HTTP Status Codes)",
        "Compare the URL's password (decoded as redis-py does) with requirepass by length and salted fingerprint.",
    ),
    "explain": (
        "offline",
        "Offline (runbook: Special Characters, Redis URL, HTTP Status Codes)",
        "The runbook's HTTP status reference (meaning, common causes, fix) and its Coolify quirks (explain coolify-url).",
    ),
    "help": ("offline", None, "Show the help of pmsops or of a command: pmsops help sync trigger."),
    "doctor": (
        "live",
        "Live checks (runbook: Verification, Troubleshooting)",
        "Every configured check at once: Redis URLs, Redis, database, Celery, /health/ready; each shown as soon as it is known.",
    ),
    "wait-for-deps": (
        "worker",
        "Worker container (runbook: Redis + Celery Worker Setup)",
        "Wait for the database and Redis (DNS → TCP → credentials), then exec `-- COMMAND` if given.",
    ),
    "worker-start": (
        "worker",
        "Worker container (runbook: Redis + Celery Worker Setup)",
        "Wait for dependencies, then exec `celery -A <app> worker` with the runbook's CELERY_* settings.",
    ),
    "worker-check": (
        "worker",
        "Worker container (runbook: Redis + Celery Worker Setup)",
        "Everything the worker container needs, in one command; --liveness is the cheap Docker HEALTHCHECK.",
    ),
    "token": (
        "api",
        "API (runbook: Quick Smoke, Manual Sync Trigger, Sync Logs)",
        "Get a JWT (password grant, or TOKEN) and show its length, parts and claims, never the token.",
    ),
    "smoke": (
        "api",
        "API (runbook: Quick Smoke, Manual Sync Trigger, Sync Logs)",
        "The runbook's Quick Smoke: env → token → /health/ready → connection → trigger → logs, each step shown as it ends.",
    ),
    "demo": ("sandbox", "Rehearsal (a local reference stack)", "The main job on a local default: sandbox up, smoke, doctor, sandbox down."),
    "top": (
        "observe",
        "Incidents (runbook: Monitoring)",
        "The whole sync system on one screen: workers, queues, active tasks, syncs, breakers and rate limits (q or Ctrl-C quits).",
    ),
    "report": (
        "observe",
        "Incidents (runbook: Monitoring)",
        "Write pmsops-report-<context>-<UTC time>.tar.gz: report.md, report.json, report.html and the evidence, redacted and secret-scanned.",
    ),
    "exporter": (
        "observe",
        "Incidents (runbook: Monitoring)",
        "Serve the sync system as Prometheus metrics (what top shows, plus counters from the sync log); alert rules ship with it.",
    ),
    "redis-url": (
        "offline",
        "Offline (runbook: Special Characters, Redis URL, HTTP Status Codes)",
        "Lint Redis URLs the way redis-py and kombu read them.",
    ),
    "check": (
        "live",
        "Live checks (runbook: Verification, Troubleshooting)",
        "Check one dependency: Redis, the database, or the API's /health/ready.",
    ),
    "celery": ("live", "Live checks (runbook: Verification, Troubleshooting)", "Ask Celery workers over the broker (never imports the application)."),
    "db": ("sync", "Syncs and their database (runbook: Sync Logs, Manual Sync Trigger)", "The sync database: apply migrations, detect schema drift."),
    "sync": ("sync", "Syncs and their database (runbook: Sync Logs, Manual Sync Trigger)", "Sync operations: trigger, follow and reap sync logs."),
    "connections": ("api", "API (runbook: Quick Smoke, Manual Sync Trigger, Sync Logs)", "Channel connections of the API."),
    "host": (
        "host",
        "Host server (runbook: HOST-SERVER-TERMINAL)",
        "Docker diagnostics on the host server (HOST-SERVER-TERMINAL): the runbook's docker inspect/exec/logs procedures.",
    ),
    "env": (
        "host",
        "Host server (runbook: HOST-SERVER-TERMINAL)",
        "Compare environment files (backend vs worker) by name and fingerprint, never by value.",
    ),
    "sandbox": (
        "sandbox",
        "Rehearsal (a local reference stack)",
        "A local reference stack to rehearse the runbook (real Redis, PostgreSQL, worker, API).",
    ),
    "context": ("context", "Setup", "Named contexts (one env file per deployment), as kubectl/docker/gh have: add, use, list, remove."),
}


class _Stub(click.Command):
    """What ``--help`` needs of a command it lists: name, panel, help line (nothing imported)."""

    def __init__(self, name: str, panel: str | None, help_line: str) -> None:
        super().__init__(name, help=help_line)
        self.rich_help_panel = panel


def load_module(module_name: str) -> dict[str, click.Command]:
    """The click commands one command module registers (Typer builds only these)."""
    import importlib

    import typer
    import typer.main

    module = importlib.import_module(f"pmsops.cli.{module_name}")
    sub = typer.Typer()
    module.register(sub)
    return dict(typer.main.get_group(sub).commands)


class LazyCommands(MutableMapping):
    """The root group's ``commands``: every catalogued name, each built on first access.

    While ``listing`` (the root ``--help``), unbuilt commands are stand-ins with their
    catalogued help line, so listing imports no command module."""

    def __init__(self, built: dict[str, click.Command] | None = None) -> None:
        self.built: dict[str, click.Command] = dict(built or {})
        self.listing = False

    def __getitem__(self, name: str) -> click.Command:
        if name in self.built:
            return self.built[name]
        entry = CATALOG.get(name)
        if entry is None:
            raise KeyError(name)
        module, panel, help_line = entry
        if self.listing:
            return _Stub(name, panel, help_line)
        for loaded_name, command in load_module(module).items():
            self.built.setdefault(loaded_name, command)
        return self.built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        # a snapshot: building one command adds its module's other commands to ``built`` meanwhile
        return iter(list(self.built) + [name for name in CATALOG if name not in self.built])

    def __len__(self) -> int:
        return len(set(self.built) | set(CATALOG))

    def __contains__(self, name: object) -> bool:
        return name in self.built or name in CATALOG


class LazyGroup(TyperGroup):
    """Typer's group with :class:`LazyCommands` (pass as ``typer.Typer(cls=LazyGroup)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # names only: TyperGroup's own version would build every command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = self.commands
        commands.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            commands.listing = False


def describe_modules() -> dict[str, tuple[str, str | None, str]]:
    """The catalog as the modules define it, in the order Typer lists the full tree
    (registered commands first, then groups): what :data:`CATALOG` must say."""
    import importlib

    import typer
    import typer.main

    whole = typer.Typer()
    module_of: dict[str, str] = {}
    for module in MODULES:
        before = {c.name for c in whole.registered_commands} | {g.name for g in whole.registered_groups}
        importlib.import_module(f"pmsops.cli.{module}").register(whole)
        after = {c.name for c in whole.registered_commands} | {g.name for g in whole.registered_groups}
        module_of.update({name: module for name in after - before})
    found: dict[str, tuple[str, str | None, str]] = {}
    for name, command in typer.main.get_group(whole).commands.items():
        panel = getattr(command, "rich_help_panel", None)
        found[name] = (module_of[name], panel if isinstance(panel, str) else None, help_line(command))
    return found


def help_line(command: click.Command) -> str:
    """The part of a command's help that the root listing shows: its first paragraph."""
    text = (command.short_help or command.help or "").strip()
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


if __name__ == "__main__":
    for name, entry in describe_modules().items():
        print(f"    {name!r}: {entry!r},")
