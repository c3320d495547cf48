"""A forged Celery worker on the broker: a real kombu pidbox node that answers remote-control broadcasts with what a test
tells it to (a broken or hostile worker; a real Celery worker cannot be made to answer a wrong type)."""

from __future__ import annotations

import threading
from typing import Any


class ForgedNode:
    def __init__(self, broker_url: str, hostname: str, answers: dict[str, Any]) -> None:
        self.hostname = hostname
        from kombu import Connection
        from kombu.pidbox import Mailbox

        self.connection = Connection(broker_url)
        mailbox = Mailbox("celery", type="fanout", accept=["json"], serializer="json")
        handlers = {command: (lambda state, _value=value, **_: _value) for command, value in answers.items()}
        self.node = mailbox.Node(hostname, channel=self.connection.channel(), handlers=handlers)
        self.node.listen()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.ready.set()
        while not self.stopping.is_set():
            try:
                self.connection.drain_events(timeout=0.2)
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        try:  # its queue and binding go too: no later test sees a silent "forged" worker bound on the broker
            self.node.channel.queue_delete(f"{self.hostname}.celery.pidbox")
        finally:
            self.connection.release()
