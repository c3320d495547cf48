"""Apply the SQL migrations shipped in ``pmsops/sync/migrations``.

Idempotent and safe to run twice or concurrently: everything happens in one
transaction that first takes a PostgreSQL advisory lock, so a second ``migrate``
waits, then finds nothing left to do. Applied versions are recorded in
``pmsops_schema_migrations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

MIGRATION_LOCK = 0x706D736F7073  # "pmsops"
VERSION_TABLE = "pmsops_schema_migrations"


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


def available(package: str = "pmsops.sync.migrations") -> list[tuple[str, str]]:
    """(version, sql) pairs in order; the version is the file name without .sql."""
    folder = resources.files(package.rsplit(".", 1)[0]).joinpath(package.rsplit(".", 1)[1])
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name[:-4], p.read_text(encoding="utf-8")) for p in files]


async def migrate(conn, migrations: list[tuple[str, str]] | None = None) -> MigrationReport:
    """Apply what is missing, under an advisory lock, in one transaction."""
    report = MigrationReport()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {VERSION_TABLE}")}
        for version, sql in migrations if migrations is not None else available():
            if version in done:
                report.already.append(version)
                continue
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)", version)
            report.applied.append(version)
    return report
