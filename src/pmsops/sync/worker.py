"""The Celery app the worker runs: ``celery -A pmsops.sync.worker:celery_app worker``.

Configured from the environment (runbook names): broker ``CELERY_BROKER_URL``
(fallback ``REDIS_URL``), result backend ``CELERY_RESULT_BACKEND``; JSON only;
``task_acks_late`` + ``task_reject_on_worker_lost`` so a task whose worker dies is
redelivered; prefetch 1; Redis ``visibility_timeout`` longer than any retry
countdown and the time limit (``CELERY_VISIBILITY_TIMEOUT``, default
max(3 × CELERY_TIME_LIMIT, 900) s), swept every ``CELERY_UNACKED_RESTORE_INTERVAL``
(10) s, so a killed worker's task is redelivered; ``broker_connection_retry_on_startup=True``.
"""

from __future__ import annotations

import logging
import os

from celery import Celery, bootsteps, signals

from pmsops.settings import register_environment_secrets


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


TIME_LIMIT = _float_env("CELERY_TIME_LIMIT", 300.0)
VISIBILITY_TIMEOUT = _float_env("CELERY_VISIBILITY_TIMEOUT", max(3 * TIME_LIMIT, 900.0))
RESTORE_INTERVAL = int(_float_env("CELERY_UNACKED_RESTORE_INTERVAL", 10))
"""How often a worker sweeps for unacked messages older than the visibility timeout (a
crashed worker's tasks); kombu's default sweep is every ~100 s."""

register_environment_secrets(os.environ)

celery_app = Celery("pmsops", include=["pmsops.sync.tasks"])
celery_app.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL"),
    result_backend=os.environ.get("CELERY_RESULT_BACKEND") or None,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=5,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "unacked_restore_interval": RESTORE_INTERVAL,
        "unacked_restore_throttle": 1,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    },
    result_backend_transport_options={"socket_timeout": 10, "socket_connect_timeout": 5},
    redis_socket_timeout=10,
    redis_socket_connect_timeout=5,
    task_time_limit=TIME_LIMIT + 30,
    task_ignore_result=True,
    result_expires=3600,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
)
if os.environ.get("CELERY_MAX_TASKS_PER_CHILD", "").isdigit():
    celery_app.conf.worker_max_tasks_per_child = int(os.environ["CELERY_MAX_TASKS_PER_CHILD"])


@signals.worker_process_init.connect
def _fresh_runtime_after_fork(**_: object) -> None:
    """A forked child must not use its parent's event loop or pool."""
    from pmsops.sync.runtime import reset_runtime

    reset_runtime()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    from pmsops.sync.runtime import close_runtime

    close_runtime()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_worker_logs(logger: logging.Logger | None = None, **_: object) -> None:
    """Every line the worker logs passes the redaction layer (URLs in broker errors, tokens)."""
    from pmsops.redaction import redact_logging

    if logger is not None:
        redact_logging(logger)


REAP_INTERVAL = _float_env("SYNC_REAP_INTERVAL", 300.0)
"""Seconds between the worker's own sweeps for stale open logs (0 turns them off)."""


@signals.worker_ready.connect
def _start_reaper(**_: object) -> None:
    """Every worker sweeps stale ``triggered``/``running`` logs now and then (idempotent across workers).

    The handlers settle what they see; a log whose worker was killed before redelivery, or whose
    database was down for every retry, is settled here, without waiting for the next trigger.
    """
    import threading

    if REAP_INTERVAL <= 0:
        return
    stop = threading.Event()
    signals.worker_shutdown.connect(lambda **_: stop.set(), weak=False)
    threading.Thread(target=_reap_forever, args=(stop,), name="pmsops-reaper", daemon=True).start()


def _reap_forever(stop) -> None:
    from pmsops.redaction import redact
    from pmsops.sync.logs import reap
    from pmsops.sync.runtime import get_runtime

    log = logging.getLogger("pmsops.sync.reaper")
    while not stop.wait(REAP_INTERVAL):
        runtime = get_runtime()

        async def sweep():
            pool = await runtime.pool()
            async with pool.acquire(timeout=runtime.config.preflight_timeout) as conn:
                return await reap(conn, runtime.config.stale_minutes * 60)

        try:
            reaped = runtime.run(sweep(), timeout=30)
        except Exception as exc:  # noqa: BLE001 - the database may be away; try again next time
            log.warning("Stale-log sweep failed: %s", redact(str(exc) or type(exc).__name__))
            continue
        if reaped:
            log.warning("Marked %d stale sync log(s) failed (no update for %g minutes)", len(reaped), runtime.config.stale_minutes)


class LivenessBeacon(bootsteps.StartStopStep):
    """Keep the liveness beacon fresh from the consumer's own timer (see :mod:`pmsops.worker.beacon`).

    A consumer step, started after the consumer consumes tasks and stopped when it
    loses the broker (the consumer restarts its steps on reconnect) or shuts down, so
    ``worker-check --liveness`` can tell "consuming" from a cheap file read. The timer
    runs in the consumer's event loop: a stuck loop stops the beats too.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs) -> None:
        from pmsops.worker.beacon import beacon_interval, beacon_path

        super().__init__(c, **kwargs)
        self.path = beacon_path()
        self.interval = beacon_interval()
        self.tref = None
        self.failed = False

    def include_if(self, c) -> bool:
        return self.interval > 0

    def _beat(self, node: str) -> None:
        from pmsops.worker.beacon import write_beacon

        try:
            write_beacon(self.path, node, self.interval)
            self.failed = False
        except Exception as exc:  # noqa: BLE001 - a beacon that cannot be written makes the HEALTHCHECK fail, not the worker
            if not self.failed:
                from pmsops.redaction import redact

                logging.getLogger("pmsops.sync.beacon").warning("Liveness beacon %s not written: %s", self.path, redact(getattr(exc, "message", None) or str(exc)))
            self.failed = True

    def start(self, c) -> None:
        node = c.hostname
        self._beat(node)
        self.tref = c.timer.call_repeatedly(self.interval, self._beat, (node,), priority=10)

    def stop(self, c) -> None:
        from pmsops.worker.beacon import remove_beacon

        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        remove_beacon(self.path)

    shutdown = stop


celery_app.steps["consumer"].add(LivenessBeacon)
