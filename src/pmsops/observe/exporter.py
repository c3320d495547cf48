"""``pmsops exporter``: the snapshot ``pmsops top`` reads, served as Prometheus metrics that know what a sync is.

One home for reading the system: every scrape is answered from one :class:`~pmsops.observe.snapshot.Collector`
refresh (the same two Redis pipelines, one SQL statement and two broadcasts as a ``top`` frame), cached for
``cache_seconds`` behind a lock, so any number of concurrent scrapers cost one refresh per cache period. The
statement also reads, by index, the sync logs that ended since the last read (each counted once, when it ends)
and the open ones by state and age, so claimed and waiting work is counted from the sync log, not from kombu's keys.

A source that fails becomes ``pmsops_up{source=…} 0`` and its series are left out; the scrape itself never fails.
Labels are platform names, operation types, statuses, error types, queue names and connection ids: never a URL,
a host, a token or an error text. The series count is capped (``max_series``); per-account and per-connection
series go first, and ``pmsops_series_dropped`` says how many.

Counters (``*_total``) start at zero when the exporter starts and count what ends from then on (Prometheus's
``rate()`` and ``increase()`` handle the restart); the last successful sync per platform is read once at start
from the past week.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from pmsops.observe.snapshot import Collector, Options
from pmsops.visible import visible

AGE_BUCKETS = ("lt_1m", "1m_5m", "5m_15m", "15m_1h", "gt_1h")
"""``open`` operations by age: the snapshot's ``width_bucket`` over 60, 300, 900 and 3600 seconds."""
FINAL_STATUSES = ("success", "failed", "cancelled")
MAX_QUEUES = 50
"""Queue names come from the broker (outside data): at most this many become label values."""


@dataclass
class ExporterOptions:
    """How the exporter reads and bounds what it serves."""

    snapshot: Options
    cache_seconds: float = 5.0
    deadline: float = 5.0
    max_series: int = 2000
    per_connection: bool = False
    api_url: str | None = None
    overlap_seconds: float = 30.0


def snapshot_timeouts(options: Options, deadline: float) -> Options:
    """Fit the snapshot's per-source timeouts into one scrape deadline: a refresh waits at most
    ``2 × redis + db + 1 s`` (its slowest path), so Redis and the broadcasts get a fifth of it each and the database
    the rest less that second (5 s: 1 s, 1 s and 2 s)."""
    options.redis_timeout = max(0.1, deadline * 0.2)
    options.broadcast_timeout = max(0.1, deadline * 0.2)
    options.db_timeout = max(0.5, deadline * 0.6 - 1.0)
    return options


@dataclass
class Ledger:
    """What the sync log says ended since the exporter started: counters, each operation counted once.

    Each read asks for logs that ended after ``watermark - overlap`` (a transaction that committed a little late is
    still seen) and skips the ids already counted in that overlap."""

    watermark: float
    overlap: float
    per_connection: bool = False
    operations: Counter = field(default_factory=Counter)
    retries: Counter = field(default_factory=Counter)
    resends: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    last_success: dict[str, float] = field(default_factory=dict)
    last_success_by_connection: dict[tuple[str, str], float] = field(default_factory=dict)
    seeded: bool = False
    _seen: dict[str, float] = field(default_factory=dict)

    @property
    def since(self) -> float:
        return self.watermark - self.overlap

    def add(self, ended: Iterable[dict[str, Any]]) -> int:
        """Count the logs that ended; returns how many were new."""
        new = 0
        for row in ended:
            key, at = str(row.get("id")), float(row.get("at") or 0.0)
            if key in self._seen:
                continue
            self._seen[key] = at
            new += 1
            platform = _label(row.get("platform") or "unknown")  # the log's details are data: label values made inert
            kind = _label(row.get("type"))
            for status in FINAL_STATUSES:  # every final status of a seen (platform, type) exists from its first end: rates need no absent series
                self.operations[(platform, kind, status)] += 0
            self.operations[(platform, kind, _label(row.get("status")))] += 1
            retries = int(row.get("retries") or 0)
            if retries:
                self.retries[(platform, _label(row.get("error_type") or "unknown"))] += retries
            self.resends[platform] += int(row.get("resends") or 0)
            self.duplicates[(platform, "delivery")] += int(row.get("duplicate_deliveries") or 0)
            self.duplicates[(platform, "push")] += int(row.get("duplicate_pushes") or 0)
            if row.get("status") == "success":
                self._note_success(platform, _label(row.get("connection_id")), at)
            self.watermark = max(self.watermark, at)
        cutoff = self.since
        self._seen = {k: v for k, v in self._seen.items() if v > cutoff}
        return new

    def seed(self, rows: Iterable[dict[str, Any]]) -> None:
        """Each platform's (and connection's) last success of the past week, read once at start."""
        for row in rows:
            self._note_success(_label(row.get("platform") or "unknown"), _label(row.get("connection_id")), float(row.get("at") or 0.0))
        self.seeded = True

    def _note_success(self, platform: str, connection_id: str, at: float) -> None:
        self.last_success[platform] = max(at, self.last_success.get(platform, 0.0))
        if self.per_connection:
            key = (platform, connection_id)
            self.last_success_by_connection[key] = max(at, self.last_success_by_connection.get(key, 0.0))


def _label(value: Any, limit: int = 64) -> str:
    """A label value from data: no steering character, bounded length (a label is an index key in Prometheus)."""
    return visible(str(value), one_line=True)[:limit]


@dataclass
class Reading:
    """One refresh: the snapshot, the API's readiness, and what the refresh cost."""

    snapshot: dict[str, Any]
    api: tuple[bool, float] | None
    duration: float
    monotonic: float


class SyncExporter:
    """A Prometheus collector over the snapshot, with a cache that concurrent scrapes share."""

    def __init__(self, options: ExporterOptions) -> None:
        self.options = options
        snapshot_timeouts(options.snapshot, options.deadline)
        self.ledger = Ledger(watermark=time.time(), overlap=options.overlap_seconds, per_connection=options.per_connection)
        self._collector = Collector(options.snapshot)
        self._lock = threading.Lock()
        self._reading: Reading | None = None
        self.refreshes = 0
        self.scrape_errors: Counter = Counter()

    def close(self) -> None:
        self._collector.close()

    # --- reading ------------------------------------------------------------------------------------
    def reading(self) -> Reading:
        """The cached refresh, or a new one when it is older than ``cache_seconds`` (one at a time)."""
        with self._lock:
            cached = self._reading
            if cached is not None and time.monotonic() - cached.monotonic < self.options.cache_seconds:
                return cached
            self._reading = self._refresh()
            return self._reading

    def _refresh(self) -> Reading:
        started = time.monotonic()
        self.options.snapshot.ended_since = self.ledger.since
        self.options.snapshot.seed_last_success = not self.ledger.seeded
        api_box: dict[str, Any] = {}
        api_thread = None
        if self.options.api_url:
            api_thread = threading.Thread(target=self._probe_api, args=(api_box,), name="exporter-api", daemon=True)
            api_thread.start()
        snapshot = self._collector.collect()
        if api_thread is not None:
            api_thread.join(max(0.0, self.options.deadline - (time.monotonic() - started)))
        ledger = snapshot.get("ledger") or {}
        if ledger.get("error"):
            self.scrape_errors["postgres"] += 1
        else:
            if ledger.get("last_success") is not None:
                self.ledger.seed(ledger["last_success"])
            self.ledger.add(ledger.get("ended") or [])
        for source, panel in (("redis", "queues"), ("celery", "workers")):
            if (snapshot.get(panel) or {}).get("error"):
                self.scrape_errors[source] += 1
        api = api_box.get("result") if self.options.api_url else None
        if self.options.api_url and api is None:
            api = (False, self.options.deadline)
        if api is not None and not api[0]:
            self.scrape_errors["api"] += 1
        self.refreshes += 1
        return Reading(snapshot, api, time.monotonic() - started, time.monotonic())

    def _probe_api(self, box: dict[str, Any]) -> None:
        from pmsops.checks.health import check_health

        started = time.monotonic()
        limit = max(0.2, self.options.deadline * 0.4)
        result = check_health(self.options.api_url or "", timeout=limit, read_timeout=limit)
        box["result"] = (result.ok, time.monotonic() - started)

    # --- the Prometheus collector ---------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        scrape_started = time.monotonic()
        reading = self.reading()
        families, dropped = bounded(list(families_for(reading, self.ledger, self.options)), self.options.max_series)
        yield from families
        yield _gauge("pmsops_series_dropped", "Series left out to stay within --max-series (per-account and per-connection first).", dropped)
        errors = CounterMetricFamily("pmsops_scrape_errors", "Refreshes in which a source failed, by source.", labels=["source"])
        for source in ("redis", "postgres", "celery", "api"):
            errors.add_metric([source], self.scrape_errors[source])
        yield errors
        yield _gauge("pmsops_refreshes", "Refreshes of the snapshot since the exporter started (one per cache period at most).", self.refreshes)
        yield _gauge("pmsops_read_age_seconds", "Age of the cached refresh this scrape was answered from.", time.monotonic() - reading.monotonic)
        yield _gauge("pmsops_read_duration_seconds", "How long the refresh this scrape was answered from took.", reading.duration)
        yield _gauge(
            "pmsops_scrape_duration_seconds", "How long this scrape took (waiting for a refresh included).", time.monotonic() - scrape_started
        )


def _gauge(name: str, doc: str, value: float, labels: list[str] | None = None, rows: Iterable[tuple[list[str], float]] = ()) -> GaugeMetricFamily:
    if labels is None:
        return GaugeMetricFamily(name, doc, value=value)
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, number in rows:
        family.add_metric(label_values, number)
    return family


def _counter(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, number in rows:
        family.add_metric(label_values, number)
    return family


def families_for(reading: Reading, ledger: Ledger, options: ExporterOptions) -> Iterator[Metric]:
    """Every metric family of one reading (the unbounded list: :func:`bounded` cuts it)."""
    snap = reading.snapshot
    yield from _sources(reading, options)
    yield from _workers_and_queues(snap)
    yield from _sync_log(snap, ledger)
    yield from _platforms(snap)


def _sources(reading: Reading, options: ExporterOptions) -> Iterator[Metric]:
    snap, cost = reading.snapshot, reading.snapshot.get("cost") or {}
    up = {
        "redis": not (snap.get("queues") or {}).get("error"),
        "postgres": not (snap.get("syncs") or {}).get("error"),
        "celery": not (snap.get("workers") or {}).get("error"),
    }
    latency = {"redis": cost.get("redis_ms"), "postgres": cost.get("db_ms"), "celery": cost.get("broadcast_stats_ms")}
    if reading.api is not None:
        up["api"] = reading.api[0]
        latency["api"] = reading.api[1] * 1000
    yield _gauge(
        "pmsops_up",
        "1 when the source answered the last refresh (redis, postgres, the celery broadcast) or answered ready (the API's /health/ready).",
        0,
        ["source"],
        [([s], float(v)) for s, v in up.items()],
    )
    yield _gauge(
        "pmsops_source_latency_seconds",
        "How long the source took to answer in the last refresh.",
        0,
        ["source"],
        [([s], ms / 1000) for s, ms in latency.items() if ms is not None and up[s]],
    )


def _workers_and_queues(snap: dict[str, Any]) -> Iterator[Metric]:
    workers = snap.get("workers") or {}
    if not workers.get("error"):
        yield _gauge("pmsops_workers_up", "Celery workers that answered the stats broadcast.", float(workers.get("answered") or 0))
        yield _gauge(
            "pmsops_workers_bound", "Celery workers with a remote-control queue bound in the broker.", float(len(workers.get("bound") or []))
        )
    if workers.get("expected") is not None:
        yield _gauge("pmsops_workers_expected", "Workers that should answer (--expect-workers).", float(workers["expected"]))
    queues = snap.get("queues") or {}
    if queues.get("error"):
        return
    items = [(visible(str(q["name"]), one_line=True), q) for q in (queues.get("items") or [])[:MAX_QUEUES]]  # names are broker data
    yield _gauge(
        "pmsops_queue_ready_messages",
        "Messages waiting in the queue (every priority list).",
        0,
        ["queue"],
        [([n], float(q["ready"])) for n, q in items],
    )
    yield _gauge(
        "pmsops_queue_oldest_age_seconds",
        "Age of the oldest waiting message (from its sync log when it has one).",
        0,
        ["queue"],
        [([n], float(q["oldest_age_s"] or 0.0)) for n, q in items],
    )


def _sync_log(snap: dict[str, Any], ledger: Ledger) -> Iterator[Metric]:
    log = snap.get("ledger") or {}
    if log.get("error"):
        return
    yield from _open_operations(log)
    yield from _ended_operations(ledger)


def _open_operations(log: dict[str, Any]) -> Iterator[Metric]:
    open_counts: Counter = Counter()
    overdue = 0
    for row in log.get("open_states") or []:
        age = AGE_BUCKETS[min(max(int(row.get("age") or 0), 0), len(AGE_BUCKETS) - 1)]
        open_counts[(str(row.get("state")), age)] += int(row.get("n") or 0)
        overdue += int(row.get("overdue") or 0)
    states = [(state, age) for state in ("claimed", "waiting", "queued") for age in AGE_BUCKETS]
    yield _gauge(
        "pmsops_sync_open_operations",
        "Open operations as the sync log says: claimed (a worker holds the lease), waiting (a retry's countdown) or queued; by age.",
        0,
        ["state", "age"],
        [([s, a], float(open_counts[(s, a)])) for s, a in states],
    )
    yield _gauge(
        "pmsops_sync_overdue_operations",
        "Open operations whose due time passed over a minute ago (the sweeper should have moved them).",
        float(overdue),
    )


def _ended_operations(ledger: Ledger) -> Iterator[Metric]:
    yield _counter(
        "pmsops_sync_operations",
        "Operations that ended, by platform, type and final status.",
        ["platform", "type", "status"],
        [(list(k), float(v)) for k, v in sorted(ledger.operations.items())],
    )
    yield _counter(
        "pmsops_sync_retries",
        "Error retries spent by operations that ended, by platform and last error type.",
        ["platform", "error_type"],
        [(list(k), float(v)) for k, v in sorted(ledger.retries.items())],
    )
    yield _counter(
        "pmsops_sync_resends",
        "Times the sweeper sent an operation again, for operations that ended.",
        ["platform"],
        [([k], float(v)) for k, v in sorted(ledger.resends.items())],
    )
    yield _counter(
        "pmsops_sync_duplicates",
        "Duplicate deliveries (claimed nothing) and duplicate pushes (a superseded attempt reached the platform), for operations that ended.",
        ["platform", "kind"],
        [(list(k), float(v)) for k, v in sorted(ledger.duplicates.items())],
    )
    yield _gauge(
        "pmsops_sync_last_success_timestamp_seconds",
        "When the platform's last operation succeeded (Unix time; the past week at start).",
        0,
        ["platform"],
        [([p], at) for p, at in sorted(ledger.last_success.items())],
    )
    if ledger.per_connection:
        yield _gauge(
            "pmsops_sync_connection_last_success_timestamp_seconds",
            "When the connection's last operation succeeded (opt-in: --per-connection).",
            0,
            ["platform", "connection"],
            [([p, c], at) for (p, c), at in sorted(ledger.last_success_by_connection.items())],
        )


def _platforms(snap: dict[str, Any]) -> Iterator[Metric]:
    platforms = snap.get("platforms") or {}
    if platforms.get("error"):
        return
    items = platforms.get("items") or []
    readable = [p for p in items if (p.get("breaker") or {}).get("state") in ("closed", "open", "half_open")]
    yield _gauge(
        "pmsops_circuit_open",
        "1 while the platform's circuit breaker is open or half-open (calls held back).",
        0,
        ["platform"],
        [([p["platform"]], float(p["breaker"]["state"] != "closed")) for p in readable],
    )
    yield _gauge(
        "pmsops_circuit_state",
        "The platform's circuit-breaker state, one series per state (1 for the current one).",
        0,
        ["platform", "state"],
        [([p["platform"], state], float(p["breaker"]["state"] == state)) for p in readable for state in ("closed", "open", "half_open")],
    )
    yield _gauge(
        "pmsops_rate_limit_tokens",
        "Tokens left in the account's rate-limit bucket (an account is a connection's credentials).",
        0,
        ["platform", "account"],
        [([p["platform"], b["account"]], float(b["tokens"])) for p in items for b in p.get("rate_limits") or [] if b.get("tokens") is not None],
    )


PER_ITEM = ("pmsops_rate_limit_tokens", "pmsops_sync_connection_last_success_timestamp_seconds")
"""Families whose series grow with the number of accounts or connections: cut first."""


def bounded(families: list[Metric], max_series: int) -> tuple[list[Metric], int]:
    """At most ``max_series`` series: whole per-item families go first, then families from the end."""
    total = sum(len(f.samples) for f in families)
    dropped = 0
    for name in PER_ITEM:
        if total <= max_series:
            break
        for family in [f for f in families if f.name == name]:
            families.remove(family)
            total -= len(family.samples)
            dropped += len(family.samples)
    while total > max_series and families:
        family = families.pop()
        total -= len(family.samples)
        dropped += len(family.samples)
    return families, dropped


def registry_for(exporter: SyncExporter) -> CollectorRegistry:
    """A registry of its own (no process or platform collectors: what is served is the system's, not this process's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    return registry


def render_once(exporter: SyncExporter) -> str:
    """The exposition text of one scrape (``pmsops exporter --once``)."""
    from prometheus_client.exposition import generate_latest

    return generate_latest(registry_for(exporter)).decode()


def serve(exporter: SyncExporter, host: str, port: int):
    """Serve ``/metrics`` on ``host:port`` in a thread; returns the server (``shutdown()`` stops it)."""
    from prometheus_client.exposition import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry_for(exporter))
    return server


# --- the command's parts --------------------------------------------------------------------------------


def shipped_file(name: str) -> str:
    """A file shipped beside this module (the rule file, its tests, the dashboard)."""
    from importlib.resources import files

    return files("pmsops.observe").joinpath("alerts", name).read_text(encoding="utf-8")


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9808`` for IPv6); bad input is a usage error."""
    from pmsops.errors import UsageError

    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    example = f"pmsops exporter --listen 127.0.0.1:{port if port.isdigit() and 0 < int(port) < 65536 else 9808}"
    if not sep or not port.isdigit():
        raise UsageError(f"--listen {value!r}: not HOST:PORT", hint=example)
    if not host:
        raise UsageError(f"--listen {value!r}: no host (127.0.0.1 for this machine only, 0.0.0.0 for every interface)", hint=example)
    if not 0 < int(port) < 65536:
        raise UsageError(f"--listen {value!r}: port {int(port)} is not between 1 and 65535", hint=example)
    return host, int(port)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def options_from(settings, expect_workers: int | None, cache: float, deadline: float, max_series: int, per_connection: bool) -> ExporterOptions:
    """The exporter's options from the configuration (broker, database, API) and its flags; bad URLs are usage errors."""
    from pmsops.errors import UsageError
    from pmsops.observe.snapshot import options_from_settings

    snapshot = options_from_settings(settings, expect_workers=expect_workers)
    if snapshot.broker_url:
        from pmsops.urls import split_intended

        split_intended(snapshot.broker_url)
    if snapshot.database_url:
        from pmsops.checks.db import normalise_dsn

        normalise_dsn(snapshot.database_url)
    if not snapshot.broker_url and not snapshot.database_url:
        raise UsageError(
            "neither CELERY_BROKER_URL/REDIS_URL nor DATABASE_URL is set: nothing to export", hint="pmsops --env-file /root/pms_env.sh exporter"
        )
    return ExporterOptions(
        snapshot=snapshot,
        cache_seconds=cache,
        deadline=deadline,
        max_series=max_series,
        per_connection=per_connection,
        api_url=settings.get("PMS_API_URL"),
    )


def listen_on(exporter: SyncExporter, host: str, port: int):
    """:func:`serve`, with a port that cannot be had as one clear line."""
    from pmsops.errors import UsageError

    try:
        return serve(exporter, host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {url_host(host)}:{port}: {exc.strerror or exc}", hint="choose another --listen port") from None


def wait_for_stop(server) -> None:
    """Block until SIGTERM (systemd, docker stop) or Ctrl-C, then stop serving."""
    import signal

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
