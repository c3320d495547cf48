"""The Redis broker transport the worker uses: kombu's, with the reconnect crash fixed.

Root cause (kombu 5.7.0, ``kombu/connection.py`` and ``kombu/transport/redis.py``):
when the broker connection is lost, ``Connection._do_close_transport`` sets
``transport.client = None``; the consumer then closes its channels, and
``Channel.close`` → ``QoS.restore_unacked_once`` → ``restore_unacked`` →
``conn_or_acquire`` → ``Channel.pool`` (already dropped by ``_disconnect_pools``) →
``_get_pool`` → ``_connparams`` reads ``self.connection.client.hostname`` on ``None``.
The ``AttributeError`` is not a connection error, so Celery reports "Unrecoverable
error" and the worker exits — with every message it held (running tasks, retries
waiting for their countdown) left in the ``unacked`` hash until the visibility timeout.
(Upstream: celery/kombu#970, #582, PR #2007, celery/celery#10205.)

The fix keeps what the channel needs to reach Redis (its connection parameters) once
it has computed them, so a channel closed after its transport was detached still
restores its unacked messages to the queue (when Redis is back) or fails with a
connection error (when it is not).

That second case needs a second fix: Celery drops every message it held when the
connection is lost (its timer of retry countdowns and its reserved requests are
cleared), and kombu's restore at channel close cannot reach a Redis that is down —
so those messages would sit in the ``unacked`` hash (persisted by ``appendonly yes``)
until the visibility timeout, 15 minutes later. :class:`QoS` remembers the delivery
tags it could not restore, and the next channel of the process (after the reconnect)
restores them to their queue first: a retry waiting for its countdown keeps its place.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger("pmsops.sync.broker")

_unrestored: set[str] = set()
_unrestored_lock = threading.Lock()
"""Delivery tags this process held when its broker connection was lost, not yet put back in their queue."""


class QoS(kombu_redis.QoS):
    """kombu's Redis ack emulation; a restore the broker was too far away for is remembered, not lost."""

    def restore_unacked(self, client=None):
        tags = list(self._delivered)
        try:
            return super().restore_unacked(client)
        except Exception as exc:  # noqa: BLE001 - the broker is away: restore after the reconnect
            if not isinstance(exc, tuple(self.channel.connection_errors) + (OSError,)):
                raise
            with _unrestored_lock:
                _unrestored.update(tags)
            self._delivered.clear()
            log.warning("Broker unreachable: %d held message(s) will be put back in their queue after the reconnect", len(tags))
            return None

    def restore_remembered(self) -> int:
        """Put back the messages a lost connection left in the unacked hash; returns how many."""
        with _unrestored_lock:
            tags = sorted(_unrestored)
        restored = 0
        for tag in tags:
            self.restore_by_tag(tag, leftmost=True)
            with _unrestored_lock:
                _unrestored.discard(tag)
            restored += 1
        return restored


class Channel(kombu_redis.Channel):
    """kombu's Redis channel that remembers its connection parameters and restores what a lost
    connection left behind."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if _unrestored and self.ack_emulation:
            restored = self.qos.restore_remembered()
            if restored:
                log.warning("Put %d message(s) held before the broker connection was lost back in their queue", restored)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        saved: dict[bool, dict[str, Any]] = self.__dict__.setdefault("_pmsops_connparams", {})
        if self.connection.client is None and asynchronous in saved:
            return dict(saved[asynchronous])  # detached from its transport: reuse what we knew
        params = super()._connparams(asynchronous=asynchronous)
        saved[asynchronous] = dict(params)
        return params


class Transport(kombu_redis.Transport):
    """``broker_transport = "pmsops.sync.broker:Transport"`` (URLs stay ``redis://``)."""

    Channel = Channel


TRANSPORT = f"{__name__}:Transport"

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
"""kombu's Redis ack emulation: the hash of delivered, unacknowledged messages and its index by delivery time
(``Channel.unacked_key`` / ``unacked_index_key``). Named here only; the sync engine never reads them."""
