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
connection error Celery recovers from (when it is not).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """kombu's Redis channel that remembers its connection parameters."""

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
