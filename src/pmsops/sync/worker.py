"""The Celery app the worker runs: ``celery -A pmsops.sync.worker:celery_app worker``.

:func:`create_app` builds an app from a :class:`~pmsops.sync.config.SyncSettings`
(tests build second apps and embedded workers with it); ``celery_app`` is the one
built from the environment, on first use (:func:`app_from_environment`), never at import;
:func:`producer_app` and :func:`sender` are what a process that only triggers syncs uses. Broker ``CELERY_BROKER_URL`` (fallback ``REDIS_URL``)
through :mod:`pmsops.sync.broker` (kombu's Redis transport with the reconnect crash
fixed); JSON only; ``task_acks_late`` + ``task_reject_on_worker_lost`` so a task
whose worker dies is redelivered; prefetch 1; Redis ``visibility_timeout``
(``CELERY_VISIBILITY_TIMEOUT``, default max(3 × CELERY_TIME_LIMIT, 900) s) longer
than the hard time limit plus the longest countdown — checked when the worker
starts, which refuses to run otherwise (exit 2) — swept every
``CELERY_UNACKED_RESTORE_INTERVAL`` (10) s. Each worker runs the :class:`Sweeper`
bootstep: the sweep of :mod:`pmsops.sync.sweeper`, which reads the logs, never the broker.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from celery import Celery, bootsteps, signals

from pmsops.sync.config import ConfigError, SyncSettings, load


def celery_config(settings: SyncSettings) -> dict:
    """The Celery configuration for these settings (one place)."""
    redis_scheme = (settings.broker_url or "").split("://", 1)[0].lower() in ("redis", "rediss")
    config = dict(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # a Redis restart is waited out, never the end of the worker
        broker_connection_timeout=5,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # no Celery rate limits: the platforms' limits are pmsops.sync.limits, in Redis, shared by every worker
        worker_disable_rate_limits=True,
        # on a lost broker connection a running attempt goes on and keeps its claim; the copies kombu restores
        # to the queue claim nothing when they are delivered again (pmsops.sync.logs.claim)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": settings.restore_interval,
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        result_backend_transport_options={"socket_timeout": 10, "socket_connect_timeout": 5},
        redis_socket_timeout=10,
        redis_socket_connect_timeout=5,
        task_time_limit=settings.hard_time_limit,
        task_ignore_result=True,
        result_expires=3600,
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
    )
    if redis_scheme:
        from pmsops.sync.broker import TRANSPORT

        config["broker_transport"] = TRANSPORT
    if settings.max_tasks_per_child:
        config["worker_max_tasks_per_child"] = settings.max_tasks_per_child
    return config


def create_app(settings: SyncSettings, name: str = "pmsops", set_as_current: bool = False) -> Celery:
    """A Celery app running the sync tasks with ``settings`` (its runtime gets the same settings)."""
    from pmsops.sync import runtime, tasks

    import uuid

    app = Celery(name, set_as_current=set_as_current)
    app.sync_settings = settings
    app.sync_incarnation = uuid.uuid4().hex[:8]  # a restarted worker with the same name is another worker
    app.conf.update(celery_config(settings))
    runtime.configure(settings)
    tasks.register(app)
    app.steps["worker"].add(Sweeper)
    app.steps["consumer"].add(LivenessBeacon)
    return app


def producer_app(settings: SyncSettings, name: str = "pmsops-producer") -> Celery:
    """An app that only sends (the API, ``pmsops sync trigger``): the worker's broker configuration, no tasks,
    no bootsteps, no runtime."""
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def sender(app: Celery):
    """``send(name, connection_id, task_id)`` through ``app``: what :func:`pmsops.sync.trigger.trigger_sync` enqueues with."""

    def send(name: str, connection_id: str, task_id: str) -> None:
        app.send_task(name, args=[connection_id], task_id=task_id)

    return send


def check_settings_at_start(settings: SyncSettings) -> None:
    """The visibility-timeout invariant, enforced before the worker consumes anything."""
    try:
        settings.check()
    except ConfigError as exc:
        from pmsops.redaction import redact
        from pmsops.visible import visible

        sys.stderr.write(f"pmsops worker: {visible(redact(exc.message))}\n")
        raise SystemExit(2) from None


class Sweeper(bootsteps.StartStopStep):
    """The sweep of :mod:`pmsops.sync.sweeper` on the worker's timer (every ``SYNC_REAP_INTERVAL`` s; 0 = off).

    The timer only starts a sweep in a thread, so a slow database never delays the timer's other entries
    (retry countdowns). One sweep at a time per worker; sweeps of several workers never take the same log."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.settings: SyncSettings = getattr(worker.app, "sync_settings", None) or load()
        check_settings_at_start(self.settings)
        self.tref = None
        self.busy = threading.Lock()
        self.log = logging.getLogger("pmsops.sync.sweeper")

    def start(self, worker) -> None:
        if self.settings.sweep_interval > 0:
            self.tref = worker.timer.call_repeatedly(self.settings.sweep_interval, self.tick, (worker,), priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self, worker) -> None:
        if not self.busy.acquire(blocking=False):
            return
        threading.Thread(target=self._sweep_once, args=(worker.app,), name="pmsops-sweeper", daemon=True).start()

    def _sweep_once(self, app) -> None:
        try:
            sweep(self.settings, app)
        except Exception as exc:  # noqa: BLE001 - Redis or the database may be away: next tick
            from pmsops.redaction import redact

            self.log.warning("Sync sweep failed: %s", redact(str(exc) or type(exc).__name__))
        finally:
            self.busy.release()


class LivenessBeacon(bootsteps.StartStopStep):
    """Keep the liveness beacon fresh from the consumer's own timer (see :mod:`pmsops.beacon`).

    A consumer step, started after the consumer consumes tasks and stopped when it
    loses the broker (the consumer restarts its steps on reconnect) or shuts down, so
    ``worker-check --liveness`` can tell "consuming" from a cheap file read. The timer
    runs in the consumer's event loop: a stuck loop stops the beats too.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs) -> None:
        from pmsops.beacon import beacon_interval, beacon_path

        super().__init__(c, **kwargs)
        self.path = beacon_path(os.environ, node=c.hostname)  # per user and node (worker-check --liveness -d NODE reads it)
        self.interval = beacon_interval(os.environ)
        self.tref = None
        self.failed = False

    def include_if(self, c) -> bool:
        return self.interval > 0

    def _beat(self, node: str) -> None:
        from pmsops.beacon import write_beacon

        try:
            write_beacon(self.path, node, self.interval)
            self.failed = False
        except Exception as exc:  # noqa: BLE001 - a beacon that cannot be written makes the HEALTHCHECK fail, not the worker
            if not self.failed:
                from pmsops.redaction import redact

                logging.getLogger("pmsops.sync.beacon").warning(
                    "Liveness beacon %s not written: %s", self.path, redact(getattr(exc, "message", None) or str(exc))
                )
            self.failed = True

    def start(self, c) -> None:
        node = c.hostname
        self._beat(node)
        self.tref = c.timer.call_repeatedly(self.interval, self._beat, (node,), priority=10)

    def stop(self, c) -> None:
        from pmsops.beacon import remove_beacon

        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        remove_beacon(self.path)

    shutdown = stop


def sweep(settings: SyncSettings, app) -> None:
    """One sweep: the due operations sent again (each message names the attempt it may claim), or failed."""
    from pmsops.sync.runtime import get_runtime
    from pmsops.sync.sweeper import sweep_once

    log = logging.getLogger("pmsops.sync.sweeper")

    def send(name: str, connection_id: str, task_id: str, attempt: int) -> None:
        app.send_task(name, args=[connection_id], kwargs={"attempt": attempt}, task_id=task_id)

    report = sweep_once(get_runtime(), send)
    if report.resent:
        log.warning("Sent %d sync operation(s) again (nothing moved them by their due time): %s", len(report.resent), ", ".join(report.resent[:10]))
    if report.failed:
        log.warning("Marked %d lost sync operation(s) failed: %s", len(report.failed), ", ".join(report.failed[:10]))


def app_from_environment() -> Celery:
    """The worker's entry point (``celery -A pmsops.sync.worker:celery_app``): settings from the environment, once."""
    try:
        settings = load()
    except ConfigError as exc:
        from pmsops.redaction import redact
        from pmsops.visible import visible

        sys.stderr.write(f"pmsops worker: {visible(redact(exc.message))}\n")
        raise SystemExit(2) from None
    from pmsops.settings import register_environment_secrets

    register_environment_secrets(os.environ)
    return create_app(settings, set_as_current=True)


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


_entry_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``celery_app`` is built on first use (``celery -A pmsops.sync.worker:celery_app`` reads it), never at
    import: importing this module to build another app (tests, the API) reads no environment."""
    global _entry_app
    if name != "celery_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _entry_app is None:
        _entry_app = app_from_environment()
    return _entry_app
