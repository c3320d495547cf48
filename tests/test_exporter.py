"""``pmsops exporter`` (#29): the reference stack as Prometheus metrics, read by a real Prometheus that fires the shipped alert.

Against the session's reference stack (real Redis, PostgreSQL, Celery worker, API): the exporter serves on a free
loopback port; a private ``prometheus`` (Debian's package) scrapes it every second with the shipped rule file (only
the ``for:`` durations scaled down) and answers every dashboard panel's query; the worker is stopped and the
no-worker alert is seen firing through Prometheus's own API. The stack is put back as it was found.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import PG_PASSWORD, REDIS_PASSWORD
from observe_stack import _api, connection_of, reset_limits

ALERTS = Path(__file__).resolve().parent.parent / "src" / "pmsops" / "observe" / "alerts"
PROMETHEUS = shutil.which("prometheus")


def _exporter(env: dict[str, str], cache: float = 1.0, expect_workers: int | None = 1, **overrides):
    from pmsops.observe.exporter import SyncExporter, options_from
    from pmsops.settings import Settings

    options = options_from(
        Settings.from_environ(env), expect_workers=expect_workers, cache=cache, deadline=5.0, max_series=2000, per_connection=False
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    return SyncExporter(options)


def _get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return response.read().decode()


def _value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value in an exposition text (labels matched as a subset)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait(condition, timeout: float, what: str, interval: float = 0.2):
    from pmsops.sandbox.processes import wait_until

    return wait_until(condition, timeout, interval=interval, what=what)


def _scrape_until(exporter, predicate, what: str, timeout: float = 15.0) -> str:
    """Scrape until ``predicate(text)`` holds; returns that scrape's text."""
    from pmsops.observe.exporter import render_once

    def scrape():
        text = render_once(exporter)
        return text if predicate(text) else None

    return _wait(scrape, timeout, what)


def _final(env: dict[str, str], task_ids: list[str]) -> bool:
    from pmsops.sync.maintenance import with_connection

    async def count(conn) -> int:
        return await conn.fetchval(
            "SELECT count(*) FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND status IN ('success', 'failed')", task_ids
        )

    return with_connection(env["DATABASE_URL"], count) == len(task_ids)


# --- the exporter against the reference stack ---------------------------------------------------------


def test_an_operation_that_ends_is_counted_once_by_platform_type_and_status(sandbox):
    env = sandbox.env()
    exporter = _exporter(env, cache=0.5)
    try:
        from pmsops.observe.exporter import render_once

        before = render_once(exporter)
        assert _value(before, "pmsops_up", source="postgres") == 1.0
        with _api(env) as client:
            task_ids = client.trigger_sync(connection_of(env, "expedia"), "availability")["task_ids"]
        _wait(lambda: _final(env, task_ids), 30, "the triggered sync to end")
        text = _scrape_until(
            exporter, lambda t: _value(t, "pmsops_sync_operations_total", platform="expedia", status="success"), "the ended operation to be counted"
        )
        read = exporter.refreshes
        again = _scrape_until(exporter, lambda _: exporter.refreshes > read, "a read after the cache period")
    finally:
        exporter.close()
    counted = _value(text, "pmsops_sync_operations_total", platform="expedia", type="availability_update", status="success")
    assert (counted, _value(again, "pmsops_sync_operations_total", platform="expedia", type="availability_update", status="success")) == (1.0, 1.0)
    assert _value(text, "pmsops_workers_up") == 1.0 and _value(text, "pmsops_workers_expected") == 1.0
    assert _value(text, "pmsops_sync_last_success_timestamp_seconds", platform="expedia") > time.time() - 120


def test_a_scrape_never_shows_a_secret_in_a_label_or_value(sandbox):
    env = sandbox.env()
    exporter = _exporter(env)
    try:
        from pmsops.observe.exporter import render_once

        text = render_once(exporter)
    finally:
        exporter.close()
    secrets = [REDIS_PASSWORD, PG_PASSWORD, urllib.parse.quote(REDIS_PASSWORD, safe=""), urllib.parse.quote(PG_PASSWORD, safe="")]
    secrets += [env.get("JWT_SECRET") or "", env.get("ENCRYPTION_KEY") or "", env.get("PASSWORD") or ""]
    assert [s for s in secrets if s and s in text] == []
    assert "redis://" not in text and "postgres" + "ql://" not in text


def test_twenty_concurrent_scrapers_cost_one_refresh_per_cache_period(sandbox):
    from pmsops.observe.exporter import serve

    exporter = _exporter(sandbox.env(), cache=60.0)
    server = serve(exporter, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    bodies: list[str] = []
    try:
        threads = [threading.Thread(target=lambda: bodies.append(_get(url))) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
    assert (len(bodies), exporter.refreshes, {_value(b, "pmsops_refreshes") for b in bodies}) == (20, 1, {1.0})


def test_a_database_that_is_down_is_pmsops_up_0_not_a_failed_scrape(sandbox, black_hole_listener):
    env = dict(sandbox.env())
    env["DATABASE_URL"] = f"postgresql://pms:{urllib.parse.quote(PG_PASSWORD, safe='')}@127.0.0.1:{black_hole_listener.port}/pms"
    from pmsops.observe.exporter import serve

    exporter = _exporter(env, deadline=2.0)
    server = serve(exporter, "127.0.0.1", 0)
    try:
        started = time.monotonic()
        text = _get(f"http://127.0.0.1:{server.server_port}/metrics")
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
    assert (_value(text, "pmsops_up", source="postgres"), _value(text, "pmsops_up", source="redis")) == (0.0, 1.0)
    assert _value(text, "pmsops_sync_operations_total") is None  # no counter series from a source that did not answer
    assert took < 10, f"a black-holed database held the scrape {took:.1f} s"
    assert PG_PASSWORD not in text


def test_a_hostile_queue_name_from_the_broker_reaches_prometheus_escaped(sandbox):
    from pmsops.checks.redis import client_for
    from pmsops.observe.exporter import render_once
    from pmsops.observe.snapshot import QUEUE_BINDINGS, KOMBU_SEP

    env = sandbox.env()
    client = client_for(env["REDIS_URL"], 3.0)
    member = f"evil\x1b]52;c;aGk=\x07{KOMBU_SEP}{KOMBU_SEP}evil\x1b[2Jq"
    client.sadd(QUEUE_BINDINGS, member)
    exporter = _exporter(env)
    try:
        text = render_once(exporter)
    finally:
        exporter.close()
        client.srem(QUEUE_BINDINGS, member)
        client.close()
    assert ("\x1b" in text, "\x07" in text, 'queue="evil\\\\x1b[2Jq"' in text) == (False, False, True)


# --- the command ------------------------------------------------------------------------------------------


def test_exporter_with_a_listen_address_that_is_not_host_port_is_one_line_and_exit_2(cli, sandbox):
    result = cli("exporter", "--listen", "9808", env=sandbox.env())
    assert (result.exit_code, result.stderr.count("\n"), "Traceback" in result.output) == (2, 2, False), result.output
    assert "--listen '9808': not HOST:PORT" in result.stderr


def test_exporter_on_a_port_already_taken_says_so_in_one_line(cli, sandbox):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        result = cli("exporter", "--listen", f"127.0.0.1:{taken.getsockname()[1]}", env=sandbox.env())
    finally:
        taken.close()
    assert (result.exit_code, "cannot listen on 127.0.0.1:" in result.stderr, "Traceback" in result.output) == (2, True, False), result.output


def test_exporter_once_prints_what_prometheus_would_read(cli, sandbox):
    result = cli("exporter", "--once", "--expect-workers", "1", env=sandbox.env())
    assert result.exit_code == 0, result.output
    assert _value(result.stdout, "pmsops_up", source="redis") == 1.0
    assert "# TYPE pmsops_sync_operations_total counter" in result.stdout


def test_the_shipped_rule_file_is_printed_as_it_ships(cli):
    result = cli("exporter", "--print-rules")
    assert (result.exit_code, result.stdout) == (0, (ALERTS / "pmsops-rules.yml").read_text())


# --- the rules, tested like code ----------------------------------------------------------------------


def _alert_names() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", (ALERTS / "pmsops-rules.yml").read_text(), flags=re.M)


def test_promtool_checks_the_rule_file():
    done = subprocess.run(["promtool", "check", "rules", str(ALERTS / "pmsops-rules.yml")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, f"SUCCESS: {len(_alert_names())} rules found" in done.stdout) == (0, True), done.stdout + done.stderr


def test_promtool_unit_tests_fire_every_rule_and_keep_its_quiet_case_quiet():
    done = subprocess.run(["promtool", "test", "rules", "pmsops-rules.test.yml"], cwd=ALERTS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (ALERTS / "pmsops-rules.test.yml").read_text()))
    assert sorted(set(_alert_names()) - tested) == []


def test_every_alert_names_its_runbook_section_and_the_command_to_run():
    text = (ALERTS / "pmsops-rules.yml").read_text()
    blocks = re.split(r"^\s*- alert: ", text, flags=re.M)[1:]
    missing = [b.split()[0] for b in blocks if "runbook:" not in b or "command:" not in b]
    assert (len(blocks), missing) == (10, [])


# --- a real Prometheus --------------------------------------------------------------------------------


def _scaled_rules(target: Path) -> Path:
    """The shipped rules with every ``for:`` one second long (the alerts are the same; the test waits seconds, not minutes)."""
    text = re.sub(r"^(\s*for: )\S+$", r"\g<1>1s", (ALERTS / "pmsops-rules.yml").read_text(), flags=re.M)
    target.write_text(text)
    return target


class Prometheus:
    """A private prometheus on a free loopback port, scraping one target every second."""

    def __init__(self, directory: Path, target: str) -> None:
        from pmsops.sandbox.servers import free_port

        self.port = free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{_scaled_rules(directory / 'rules.yml')}]\n"
            f"scrape_configs:\n  - job_name: pmsops\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        from pmsops.sandbox.processes import spawn

        self.log = open(directory / "prometheus.log", "w")
        self.proc = spawn(  # the one way the suite starts a server: its own session, stopped as a group
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            cwd=directory,
            stdout=self.log,
        )
        _wait(self._ready, 60, "prometheus to be ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {Path(self.log.name).read_text()[-2000:]}")
        try:
            return "Ready" in _get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        return json.loads(_get(f"http://127.0.0.1:{self.port}/api/v1/{path}" + (f"?{query}" if query else "")))["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        from pmsops.sandbox.processes import stop

        stop(self.proc, grace=20.0)  # the one way the suite stops a server: SIGTERM, a grace period, then SIGKILL
        self.log.close()


@pytest.fixture
def prometheus_on_stack(sandbox, tmp_path):
    from pmsops.observe.exporter import serve

    exporter = _exporter(sandbox.env(), cache=0.5)
    server = serve(exporter, "127.0.0.1", 0)
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{server.server_port}")
    try:
        yield prometheus
    finally:
        prometheus.stop()
        server.shutdown()
        server.server_close()
        exporter.close()


@pytest.mark.slow  # the end-to-end Prometheus run: 14 s alone, 130 s in make test behind other modules' syncs (test-full runs it)
@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus package (make setup installs it)")
def test_prometheus_scrapes_the_stack_answers_every_dashboard_panel_and_fires_no_worker_when_the_worker_stops(sandbox, prometheus_on_stack):
    prom, env = prometheus_on_stack, sandbox.env()
    # an operation that needed a retry (the platform away for its first attempt) and one that did not: every panel has data
    sandbox.stop("platform")
    try:
        with _api(env) as client:
            retried = client.trigger_sync(connection_of(env, "booking_com"), "availability")["task_ids"]
        _wait(lambda: _retried(env, retried), 30, "the operation to wait for its retry")
    finally:
        sandbox.start("platform")
    with _api(env) as client:
        plain = client.trigger_sync(connection_of(env, "expedia"), "availability")["task_ids"]
    _wait(lambda: _final(env, retried + plain), 60, "both operations to end")
    _wait(lambda: prom.query("pmsops_sync_retries_total") and prom.query("pmsops_sync_operations_total"), 30, "prometheus to have the counters")
    panels = json.loads((ALERTS / "grafana-dashboard.json").read_text())["panels"]
    empty = [
        (panel["title"], target["expr"])
        for panel in panels
        for target in panel["targets"]
        if not _wait(lambda e=target["expr"]: prom.query(e), 30, f"data for {target['expr']}")
    ]
    assert empty == []
    assert prom.api("rules")["groups"][0]["rules"], "prometheus loaded no rule"
    sandbox.stop("worker")
    try:
        try:
            firing = _wait(
                lambda: [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == "PmsopsNoWorker" and a["state"] == "firing"],
                240,  # 14 s alone; 130 s once earlier tests left the worker syncs to finish before it stops (a warm shutdown)
                "PmsopsNoWorker to fire",
            )
        except Exception as exc:  # what Prometheus saw, to tell a slow rule from a worker that still answers
            seen = {q: prom.query(q) for q in ("pmsops_workers_up", "pmsops_workers_expected", "pmsops_up", "up")}
            raise AssertionError(f"{exc}; prometheus saw {seen}; alerts {prom.api('alerts')['alerts']}") from None
    finally:
        sandbox.start("worker")
        reset_limits(env)
    assert firing[0]["annotations"]["command"] == "pmsops worker-check; pmsops top --once"


def _retried(env: dict[str, str], task_ids: list[str]) -> bool:
    from pmsops.sync.maintenance import with_connection

    async def count(conn) -> int:
        return await conn.fetchval("SELECT count(*) FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND errors > 0", task_ids)

    return with_connection(env["DATABASE_URL"], count) == len(task_ids)


# --- units: the ledger and the series cap ------------------------------------------------------------------


def test_the_ledger_counts_an_operation_seen_by_two_overlapping_reads_once():
    from pmsops.observe.exporter import Ledger

    ledger = Ledger(watermark=1000.0, overlap=30.0)
    row = {
        "id": "a",
        "platform": "airbnb",
        "type": "availability_update",
        "status": "failed",
        "at": 1010.0,
        "retries": 3,
        "error_type": "server_error",
    }
    assert (ledger.add([row]), ledger.add([row, {**row, "id": "b", "status": "success", "retries": 0, "at": 1020.0}])) == (1, 1)
    assert dict(ledger.operations) == {
        ("airbnb", "availability_update", "failed"): 1,
        ("airbnb", "availability_update", "success"): 1,
        ("airbnb", "availability_update", "cancelled"): 0,  # present from the first end: rate() needs no absent series
    }
    assert (dict(ledger.retries), ledger.since, ledger.last_success) == ({("airbnb", "server_error"): 3}, 990.0, {"airbnb": 1020.0})


def test_over_max_series_the_per_account_series_go_first_and_are_counted():
    from prometheus_client.core import GaugeMetricFamily

    from pmsops.observe.exporter import bounded

    def family(name: str, n: int):
        f = GaugeMetricFamily(name, "x", labels=["i"])
        for i in range(n):
            f.add_metric([str(i)], 1.0)
        return f

    kept, dropped = bounded([family("pmsops_up", 4), family("pmsops_rate_limit_tokens", 600), family("pmsops_queue_ready_messages", 10)], 100)
    assert ([f.name for f in kept], dropped) == (["pmsops_up", "pmsops_queue_ready_messages"], 600)


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("9808", "not HOST:PORT"),
        ("127.0.0.1:99999", "port 99999 is not between 1 and 65535"),
        ("127.0.0.1:0", "port 0 is not between 1 and 65535"),
        (":9808", "no host (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"),
        ("localhost:http", "not HOST:PORT"),
    ],
)
def test_exporter_listen_mistakes_are_named_in_one_line(cli, listen, said):
    result = cli("exporter", "--listen", listen, env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert (result.exit_code, result.stderr.splitlines()[0]) == (2, f"✗ error: --listen {listen!r}: {said}")


def test_label_values_read_from_the_sync_log_are_inert_and_bounded():
    from pmsops.observe.exporter import Ledger

    ledger = Ledger(watermark=0.0, overlap=30.0)
    row = {
        "id": "a",
        "platform": "\x1b]52;c;aGk=\x07evil",
        "type": "x" * 500,
        "status": "failed\u202e",
        "at": 1.0,
        "retries": 1,
        "error_type": "\x1b[2J",
    }
    ledger.add([row])
    labels = [v for key in list(ledger.operations) + list(ledger.retries) for v in key]
    assert ([v for v in labels if "\x1b" in v or "\u202e" in v or len(v) > 64], "\\x1b]52" in labels[0]) == ([], True)
