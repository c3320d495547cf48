"""The baseline for task throughput: bare Celery tasks that only count themselves."""

import os

import redis
from celery import Celery

app = Celery("bench-noop", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
_counter = redis.Redis.from_url(os.environ["BENCH_COUNTER_URL"])


@app.task(name="bench.noop")
def noop() -> None:
    _counter.incr("bench:noop:done")
