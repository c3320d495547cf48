"""``demo``: sandbox up → smoke → doctor → sandbox down, saying what it does."""

from __future__ import annotations

from typing import Callable

from pmsops.results import Result
from pmsops.settings import Settings


def run_demo(
    say: Callable[[str], None],
    show: Callable[[list[Result], str], int],
    keep: bool = False,
    directory: str | None = None,
    database_url: str | None = None,
    timeout: float = 60.0,
) -> int:
    """Return the worst exit code of smoke and doctor; the sandbox is always taken down unless ``keep``."""
    from pmsops.procedures.smoke import run_smoke
    from pmsops.checks.doctor import run_doctor
    from pmsops.sandbox.stack import Sandbox

    sandbox = Sandbox.at(directory)
    say("==> 1/4 pmsops sandbox up: redis-server, PostgreSQL, migrations + seed, fake platform, Celery worker, API")
    sandbox.up(database_url=database_url, progress=lambda line: say(f"    {line}"))
    code = 1
    try:
        settings = Settings.from_environ(sandbox.env())
        say(f"==> 2/4 pmsops --env-file {sandbox.env_path} smoke   (the runbook's Quick Smoke)")
        from pmsops.procedures.smoke import SLOTS
        from pmsops.results import Collector

        seen: dict[str, str] = {}

        def progress(slot: str, key: str, text: str) -> None:  # one line per change of an operation, never repeated
            if seen.get(key) != text:
                seen[key] = text
                say(f"      … {text}")

        smoke = run_smoke(settings, wait=timeout, env_file=str(sandbox.env_path), collector=Collector(SLOTS, on_progress=progress))
        smoke_code = show(smoke.results, "smoke")
        say(f"==> 3/4 pmsops --env-file {sandbox.env_path} doctor")
        doctor_code = show(run_doctor(settings, timeout=3.0, expect_workers=1), "doctor")
        code = max(smoke_code, doctor_code)
    finally:
        if keep:
            say(f"==> 4/4 keeping the sandbox (--keep): pmsops sandbox down when done; env file {sandbox.env_path}")
        else:
            say("==> 4/4 pmsops sandbox down")
            sandbox.down()
    say("demo passed" if code == 0 else "demo FAILED")
    return code
