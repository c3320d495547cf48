"""A minimal Celery app for the live-check tests: the checks never import it."""

import os
import time

from celery import Celery

app = Celery("sleepy", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(broker_connection_retry_on_startup=True, worker_prefetch_multiplier=1, task_acks_late=False, accept_content=["json"])


@app.task(name="tests.sleep")
def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@app.task(name="tests.noop")
def noop() -> None:
    return None
