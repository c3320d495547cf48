"""pmsops benchmarks: ratios against the tools operators use today.

Run with ``make bench`` (or ``.venv/bin/python bench/run.py [--quick]``). Starts its
own servers on free loopback ports (the sandbox's code), prints a table and the
Markdown block for the README, and writes bench/results/latest.json. Targets are
targets, not assertions: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pmsops.sandbox import processes

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
PMSOPS = str(VENV_BIN / "pmsops")
CELERY = str(VENV_BIN / "celery")
RESULTS: list[dict] = []


def timed(argv: list[str], env: dict[str, str] | None = None, runs: int = 5, timeout: float = 600) -> tuple[float, list[float], int]:
    """Median wall time of ``runs`` runs (seconds), all samples, last exit code."""
    samples, code = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
        samples.append(time.perf_counter() - started)
        code = done.returncode
    return statistics.median(samples), samples, code


def record(name: str, ours: float, theirs: float | None, target: str, ok: bool, unit: str = "s", note: str = "") -> None:
    ratio = ours / theirs if theirs else None
    RESULTS.append({"name": name, "ours": ours, "baseline": theirs, "ratio": ratio, "target": target, "met": ok, "unit": unit, "note": note})
    shown_ratio = f"{ratio:.3f}" if ratio is not None else "-"
    print(f"  {name:<58} ours {ours:9.3f} {unit:<6} baseline {theirs if theirs is not None else '-':>9} ratio {shown_ratio:>7}  target {target:<10} {'met' if ok else 'MISSED'}", flush=True)


def black_hole() -> int:
    """A loopback port that accepts and never answers, open until the benchmarks end."""
    from pmsops.sandbox.processes import BlackHole

    return BlackHole().port


def bench_startup(runs: int) -> None:
    print("start-up (median of %d)" % runs, flush=True)
    typer_app, _, _ = timed([sys.executable, str(BENCH / "minimal_typer_app.py"), "--help"], runs=runs)
    ours_help, _, _ = timed([PMSOPS, "--help"], runs=runs)
    record("pmsops --help vs minimal 10-command Typer app --help", ours_help, typer_app, "≤ 1.1", ours_help / typer_app <= 1.1)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([PMSOPS, "encode-redis-password", "--stdin"], input=b"p+ss=w@rd/#1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    enc = statistics.median(samples)
    record("pmsops encode-redis-password vs the same Typer --help", enc, typer_app, "≤ 1.1", enc / typer_app <= 1.1,
           note="verifies the round trip with redis-py's and kombu's parsers, which it must import")


def bench_live(sandbox, runs: int) -> None:
    env = sandbox.env()
    broker = env["CELERY_BROKER_URL"]
    worker = sandbox.worker_name
    print("celery ping, one live worker (median of %d)" % runs, flush=True)
    inspect, _, _ = timed([CELERY, "-b", broker, "inspect", "ping", "-t", "3"], runs=runs)
    inspect_d, _, _ = timed([CELERY, "-b", broker, "inspect", "ping", "-t", "3", "-d", worker], runs=runs)
    ours, _, code = timed([PMSOPS, "celery", "ping", "--broker", broker], runs=runs)
    record("pmsops celery ping vs celery inspect ping -t 3", ours, inspect, "≤ 0.15", ours / inspect <= 0.15 and code == 0)
    record("pmsops celery ping vs celery inspect ping -t 3 -d HOST", ours, inspect_d, "≤ 1.0", ours <= inspect_d)

    print("doctor, everything up (median of %d)" % runs, flush=True)
    from pmsops.sandbox.servers import find_binary
    from pmsops.urls import host_of

    db_host, db_port = host_of(env["DATABASE_URL"])
    script = (f"redis-cli -u {shell_quote(env['REDIS_URL'])} --no-auth-warning ping && "
              f"{find_binary('pg_isready')} -h {db_host} -p {db_port} && "
              f"{CELERY} -b {shell_quote(broker)} inspect ping -t 3 && "
              f"curl -s -o /dev/null {env['PMS_API_URL']}/health/ready")
    runbook, _, _ = timed(["bash", "-c", script], runs=runs)
    doctor, _, code = timed([PMSOPS, "--env-file", str(sandbox.env_path), "doctor"], runs=runs)
    record("pmsops doctor vs redis-cli, pg_isready, inspect ping, curl in turn", doctor, runbook, "≤ 0.25", doctor / runbook <= 0.25 and code == 0)

    print("doctor, database black-holed", flush=True)
    hole = black_hole()
    bad_env = {"DATABASE_URL": f"postgresql://u:p@127.0.0.1:{hole}/db"}
    wall, _, code = timed([PMSOPS, "--env-file", str(sandbox.env_path), "doctor", "--timeout", "3"], env=bad_env, runs=max(3, runs // 2))
    # --env-file beats the process environment, so point the file's DATABASE_URL at the hole
    patched = Path(tempfile.mkdtemp()) / "holed.env"
    patched.write_text(sandbox.env_path.read_text() + f"export DATABASE_URL='postgresql://u:p@127.0.0.1:{hole}/db'\n")
    wall, _, code = timed([PMSOPS, "--env-file", str(patched), "doctor", "--timeout", "3"], runs=max(3, runs // 2))
    record("pmsops doctor with a black-holed database (timeout 3 s)", wall, 3.0, "≤ 3.5 s", wall <= 3.5 and code == 1, note="baseline column: the configured timeout")
    asyncpg_default = 60.0
    print(f"    (for reference: asyncpg's default connect timeout is {asyncpg_default:.0f} s; redis-cli ping and celery inspect ping hang on a black hole)")


def cpu_and_wall(argv: list[str], env: dict[str, str] | None = None, runs: int = 5) -> tuple[float, float, int]:
    """Median CPU (user + sys of the child, seconds) and median wall time per run; last exit code."""
    import resource

    cpus, walls, code = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        code = subprocess.run(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(cpus), statistics.median(walls), code


def bench_healthcheck(sandbox, runs: int) -> None:
    """What one Docker HEALTHCHECK run costs: worker-check --liveness vs the full worker-check vs celery inspect ping -d."""
    env = sandbox.env()
    worker = sandbox.worker_name
    print("worker HEALTHCHECK cost per run (median of %d; CPU = user + sys)" % runs, flush=True)
    beacon = os.environ["WORKER_BEACON_FILE"]
    deadline = time.monotonic() + 30
    while not os.path.exists(beacon) and time.monotonic() < deadline:
        time.sleep(0.1)
    bare_cpu, bare_wall, _ = cpu_and_wall([sys.executable, "-c", "pass"], runs=runs)
    live_cpu, live_wall, live_code = cpu_and_wall([PMSOPS, "worker-check", "--liveness"], runs=runs)
    mod_cpu, mod_wall, mod_code = cpu_and_wall([sys.executable, "-m", "pmsops.worker.alive"], runs=runs)
    full_cpu, full_wall, full_code = cpu_and_wall([PMSOPS, "--env-file", str(sandbox.env_path), "worker-check", "--allow-root", "--destination", worker], runs=runs)
    ping_cpu, ping_wall, _ = cpu_and_wall([CELERY, "-A", "pmsops.sync.worker:celery_app", "inspect", "ping", "-d", worker, "-t", "3"], env=env, runs=runs)
    record("python -m pmsops.worker.alive vs celery inspect ping -d HOST (CPU per run)", mod_cpu, ping_cpu, "≤ 0.25", mod_cpu <= 0.25 * ping_cpu and mod_code == 0, unit="s CPU",
           note=f"python -c pass: {bare_cpu:.3f} s CPU, {bare_wall:.3f} s wall")
    record("python -m pmsops.worker.alive vs celery inspect ping -d HOST (wall per run)", mod_wall, ping_wall, "≤ 0.25", mod_wall <= 0.25 * ping_wall)
    record("pmsops worker-check --liveness vs celery inspect ping -d HOST (CPU per run)", live_cpu, ping_cpu, "≤ 0.5", live_cpu <= 0.5 * ping_cpu and live_code == 0, unit="s CPU",
           note="the CLI's start-up (Typer, Rich) is most of it")
    record("pmsops worker-check --liveness vs celery inspect ping -d HOST (wall per run)", live_wall, ping_wall, "≤ 0.5", live_wall <= 0.5 * ping_wall)
    record("full worker-check vs celery inspect ping -d HOST (CPU per run)", full_cpu, ping_cpu, "≤ 1.2", full_cpu <= 1.2 * ping_cpu and full_code == 0, unit="s CPU")
    record("full worker-check vs celery inspect ping -d HOST (wall per run)", full_wall, ping_wall, "≤ 1.2", full_wall <= 1.2 * ping_wall)
    for interval in (5, 10, 30):
        print(f"    HEALTHCHECK every {interval:>2} s: python -m pmsops.worker.alive {100 * mod_cpu / interval:.2f} % of a core, "
              f"worker-check --liveness {100 * live_cpu / interval:.2f} %, "
              f"full worker-check {100 * full_cpu / interval:.1f} %, inspect ping {100 * ping_cpu / interval:.1f} %", flush=True)


def shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def _wait_counter(client, key: str, n: int, timeout: float) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while int(client.get(key) or 0) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {int(client.get(key) or 0)} of {n} done within {timeout:g} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def bench_throughput(sandbox, n: int) -> None:
    """N availability syncs end to end vs N bare no-op tasks, same broker, pool and concurrency."""
    import redis
    from celery import Celery

    from pmsops.sandbox.servers import free_port
    from pmsops.sync.maintenance import with_connection
    from pmsops.sync.trigger import trigger_sync

    env = sandbox.env()
    base = env["REDIS_URL"].rsplit("/", 1)[0]
    noop_broker, sync_broker = base + "/10", base + "/11"
    counter = redis.Redis.from_url(base + "/12")
    counter.delete("bench:noop:done")
    common = {**os.environ, "PYTHONPATH": str(ROOT), "CELERY_CONCURRENCY": "4"}
    print(f"throughput: {n} tasks, threads pool, concurrency 4, Redis broker", flush=True)
    noop_env = {**common, "CELERY_BROKER_URL": noop_broker, "BENCH_COUNTER_URL": base + "/12"}
    noop_worker = _start_worker("bench.noop_app:app", "noop@bench", noop_env)
    try:
        _await_worker(noop_broker, "noop@bench", noop_worker)
        sender = Celery(broker=noop_broker, set_as_current=False)
        with sender.connection_for_write() as conn:
            started = time.perf_counter()
            for _ in range(n):
                sender.send_task("bench.noop", connection=conn)
            _wait_counter(counter, "bench:noop:done", n, 300)
            noop_rate = n / (time.perf_counter() - started)
    finally:
        processes.stop(noop_worker, grace=20)

    platform_port = free_port()
    platform = processes.spawn(processes.python_argv("-m", "pmsops.sandbox.fake_platform", "--port", str(platform_port)), cwd=ROOT)
    sync_env = {**common, **env, "CELERY_BROKER_URL": sync_broker, "REDIS_URL": sync_broker, "CELERY_RESULT_BACKEND": "",
                "PLATFORM_BASE_URL": f"http://127.0.0.1:{platform_port}", "CELERY_LOGLEVEL": "WARNING"}
    sync_worker = _start_worker("pmsops.sync.worker:celery_app", "sync@bench", sync_env)
    try:
        import httpx

        processes.wait_for_port(platform_port, 5, "fake platform", exited=processes.exited(platform))
        httpx.post(f"http://127.0.0.1:{platform_port}/_control/keep", json={"keep": False}, timeout=2)
        _await_worker(sync_broker, "sync@bench", sync_worker)
        connections = _google_connections(env, count=max(10, n // 20))
        planned: list[tuple[str, str, str]] = []

        async def plan(conn):
            for i in range(n):
                await trigger_sync(conn, connections[i % len(connections)], "availability", send=lambda name, cid, tid: planned.append((name, cid, tid)), stale_minutes=600)

        with_connection(env["DATABASE_URL"], plan, timeout=60)
        sender = Celery(broker=sync_broker, set_as_current=False)
        task_ids = [t for _, _, t in planned]

        async def run_and_wait(conn) -> float:
            """Send every task, then poll on this one connection until all logs are final."""
            query = "SELECT count(*) FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND status IN ('success', 'failed')"
            with sender.connection_for_write() as broker:
                started = time.perf_counter()
                for name, cid, tid in planned:
                    sender.send_task(name, args=[cid], task_id=tid, connection=broker)
            deadline = time.monotonic() + 600
            while await conn.fetchval(query, task_ids) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return n / (time.perf_counter() - started)

        sync_rate = with_connection(env["DATABASE_URL"], run_and_wait, timeout=700)

        async def failed(conn):
            return await conn.fetchval("SELECT count(*) FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND status = 'failed'", task_ids)

        failures = with_connection(env["DATABASE_URL"], failed)
    finally:
        processes.stop(sync_worker, grace=20)
        processes.stop(platform)
    record(f"{n} availability syncs end to end vs bare Celery no-op tasks (tasks/s)", sync_rate, noop_rate, "≥ 0.5", sync_rate / noop_rate >= 0.5 and failures == 0,
           unit="task/s", note=f"{failures} failed")


def _google_connections(env: dict[str, str], count: int) -> list[str]:
    from pmsops.sync.maintenance import with_connection
    from pmsops.sync.crypto import encrypt

    async def create(conn):
        agency, prop = uuid.uuid4(), uuid.uuid4()
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'bench')", agency)
        await conn.execute("INSERT INTO properties (id, agency_id, name) VALUES ($1, $2, 'bench')", prop, agency)
        ids = []
        for i in range(count):
            cid = uuid.uuid4()
            await conn.execute("INSERT INTO channel_connections (id, agency_id, property_id, platform_type, platform_listing_id, access_token_encrypted) VALUES ($1, $2, $3, 'google', $4, $5)",
                               cid, agency, prop, f"BENCH-{i}", encrypt("bench-token-xyz", env["ENCRYPTION_KEY"]))
            ids.append(str(cid))
        return ids

    return with_connection(env["DATABASE_URL"], create)


def _start_worker(app: str, name: str, env: dict[str, str]) -> subprocess.Popen:
    """A threads-pool Celery worker (concurrency 4) started the sandbox's way (-P, umask 077, own session, cwd the checkout)."""
    argv = processes.python_argv("-m", "celery", "-A", app, "worker", "--pool", "threads", "-c", "4", "-l", "WARNING", "-n", name,
                                 "--without-mingle", "--without-gossip")
    return processes.spawn(argv, cwd=ROOT, env=env)


def _await_worker(broker: str, name: str, proc: subprocess.Popen) -> None:
    processes.wait_for_worker(broker, name, 60, exited=processes.exited(proc))


def bench_log_writes(sandbox, n: int) -> None:
    """Sync-log updates: the per-process pool vs a new connection per update (the runbook's design)."""
    import asyncpg

    from pmsops.checks.db import normalise_dsn

    dsn, _ = normalise_dsn(sandbox.env()["DATABASE_URL"])
    log_id = uuid.UUID(sandbox.load().seed["connections"][0]["id"])

    async def go() -> tuple[float, float]:
        conn = await asyncpg.connect(dsn)
        row = await conn.fetchval("INSERT INTO channel_sync_logs (connection_id, operation_type, status) VALUES ($1, 'availability_update', 'running') RETURNING id", log_id)
        await conn.close()
        update = "UPDATE channel_sync_logs SET details = details || $2::text::jsonb, updated_at = now() WHERE id = $1"
        fresh_n = max(100, n // 3)
        started = time.perf_counter()
        for i in range(fresh_n):
            c = await asyncpg.connect(dsn, statement_cache_size=0)
            await c.execute(update, row, json.dumps({"i": i}))
            await c.close()
        fresh = fresh_n / (time.perf_counter() - started)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=5)
        started = time.perf_counter()
        for i in range(n):
            async with pool.acquire() as c:
                await c.execute(update, row, json.dumps({"i": i}))
        pooled = n / (time.perf_counter() - started)
        await pool.close()
        return pooled, fresh

    pooled, fresh = asyncio.run(go())
    print("sync-log writes", flush=True)
    record("sync-log updates: per-process pool vs new connection each (writes/s)", pooled, fresh, "≥ 3×", pooled / fresh >= 3, unit="write/s")


def markdown(machine: str) -> str:
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {machine} (`make bench`):", "",
             "| Benchmark | pmsops | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in RESULTS:
        unit = r["unit"]
        fmt = (lambda v: f"{v:.3f} {unit}") if unit.startswith("s") else (lambda v: f"{v:.0f} {unit}")
        base = fmt(r["baseline"]) if r["baseline"] is not None else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        lines.append(f"| {r['name']} | {fmt(r['ours'])} | {base} | {ratio} | {r['target']} | {'yes' if r['met'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and tasks (a smoke test of the benchmarks)")
    parser.add_argument("--only", choices=["startup", "live", "healthcheck", "throughput", "logs"], action="append")
    args = parser.parse_args()
    runs, n = (3, 200) if args.quick else (7, 1000)
    only = set(args.only or ["startup", "live", "healthcheck", "throughput", "logs"])
    if not shutil.which("redis-cli") or not shutil.which("curl"):
        print("note: redis-cli and curl are needed for the runbook baseline (apt-get install redis-tools curl)")
    from pmsops.sandbox.stack import Sandbox

    if "startup" in only:
        bench_startup(runs)
    sandbox = None
    if only & {"live", "healthcheck", "throughput", "logs"}:
        sandbox = Sandbox.at(Path(tempfile.mkdtemp(prefix="pmsops-bench-")))
        # the sandbox's worker inherits this: its liveness beacon goes where worker-check --liveness reads it
        os.environ["WORKER_BEACON_FILE"] = str(Path(tempfile.mkdtemp(prefix="pmsops-bench-beacon-")) / "beacon")
        print("starting the reference stack …", flush=True)
        sandbox.up()
    try:
        if "live" in only:
            bench_live(sandbox, runs)
        if "healthcheck" in only:
            bench_healthcheck(sandbox, runs)
        if "logs" in only:
            bench_log_writes(sandbox, n)
        if "throughput" in only:
            bench_throughput(sandbox, n)
    finally:
        if sandbox is not None:
            sandbox.down()
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    from pmsops.safefile import write_text

    write_text(out / "latest.json", json.dumps({"machine": machine, "results": RESULTS}, indent=2), "benchmark results")
    print()
    print(markdown(machine))


if __name__ == "__main__":
    main()
