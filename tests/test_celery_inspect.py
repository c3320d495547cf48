"""celery ping|registered|active|stats against real worker processes, through the broker only."""

import json
import time

import pytest

from conftest import start_worker, stop_worker


def test_ping_returns_as_soon_as_the_worker_answers(cli, worker_broker, celery_worker):
    started = time.monotonic()
    result = cli("celery", "ping", "--broker", worker_broker, "--json")
    elapsed = time.monotonic() - started
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert report["results"][0]["details"]["workers"] == [celery_worker]
    assert elapsed < 2.0  # `celery inspect ping -t 3` would wait 3 s


def test_ping_addressed_to_one_worker(cli, worker_broker, celery_worker):
    result = cli("celery", "ping", "--broker", worker_broker, "-d", celery_worker)
    assert result.exit_code == 0
    assert "1 worker answered" in result.stdout


def test_ping_leaves_no_reply_keys_in_redis(worker_broker, celery_worker):
    import redis

    from pmsops.checks.celery import ping

    assert ping(worker_broker).status == "ok"
    client = redis.Redis.from_url(worker_broker)
    leftovers = [k for k in client.keys("*") if b"reply" in k and not k.startswith(b"_kombu.binding")]
    assert leftovers == []
    assert not any(client.smembers("_kombu.binding.reply.celery.pidbox"))


def test_no_worker_answered_gives_the_runbook_causes(cli, redis_server):
    empty_broker = redis_server.url_for_db(7)
    result = cli("celery", "ping", "--broker", empty_broker, "--timeout", "0.5")
    assert result.exit_code == 1
    assert "no worker answered" in result.stdout
    assert "worker-cmd" in result.stdout and "env-diff" in result.stdout


def test_broker_falls_back_to_redis_url(cli, worker_broker, celery_worker, monkeypatch):
    monkeypatch.setenv("REDIS_URL", worker_broker)
    result = cli("celery", "ping")
    assert result.exit_code == 0, result.output


def test_registered_checks_expected_tasks(cli, worker_broker, celery_worker):
    ok = cli("celery", "registered", "--broker", worker_broker, "--expect-task", "tests.sleep")
    assert ok.exit_code == 0, ok.output
    missing = cli(
        "celery", "registered", "--broker", worker_broker, "--expect-task", "app.channel_manager.core.sync_engine.update_channel_availability"
    )
    assert missing.exit_code == 1
    assert "not registered" in missing.stdout


def test_stats_reports_pool_and_concurrency(cli, worker_broker, celery_worker):
    result = cli("celery", "stats", "--broker", worker_broker, "--json")
    details = json.loads(result.stdout)["results"][0]["details"]["workers"][celery_worker]
    assert details["concurrency"] == 2


def test_stuck_task_is_flagged_with_its_age(cli, worker_broker, celery_worker):
    from celery import Celery

    sender = Celery(broker=worker_broker, set_as_current=False)
    sender.send_task("tests.sleep", args=[4])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        result = cli("celery", "active", "--broker", worker_broker, "--stuck-after", "1", "--json")
        if json.loads(result.stdout)["results"][0]["status"] == "fail":
            break
        time.sleep(0.3)
    assert result.exit_code == 1
    report = json.loads(result.stdout)["results"][0]
    assert "running longer than 1 s" in report["summary"]
    assert report["details"]["tasks"][0]["name"] == "tests.sleep"


@pytest.fixture
def two_workers(redis_server):
    broker = redis_server.url_for_db(2)
    procs = [start_worker(broker, "dup1@pmsops-test", concurrency=1), start_worker(broker, "dup2@pmsops-test", concurrency=1)]
    yield broker
    for proc in procs:
        stop_worker(proc)


def test_two_workers_fail_when_exactly_one_is_expected(cli, two_workers):
    result = cli("celery", "ping", "--broker", two_workers, "--expect", "1")
    assert result.exit_code == 1
    assert "2 workers answered, expected 1" in result.stdout
    assert "duplicate" in result.stdout


def test_black_holed_broker_fails_within_timeout(cli, black_hole):
    started = time.monotonic()
    result = cli("celery", "ping", "--broker", f"redis://:x@127.0.0.1:{black_hole}/0", "--timeout", "1")
    assert result.exit_code == 1
    assert time.monotonic() - started < 2.5


def test_ping_names_the_broker_address_kombu_really_uses(cli, worker_broker, celery_worker, redis_server):
    result = cli("celery", "ping", "--broker", worker_broker, "--json")

    details = json.loads(result.stdout)["results"][0]["details"]
    assert result.exit_code == 0, result.output
    assert details["broker_address"] == f"127.0.0.1:{redis_server.port}"
    assert f"broker: redis://:***@127.0.0.1:{redis_server.port}/" in " ".join(json.loads(result.stdout)["results"][0]["notes"])


def test_a_long_running_reader_still_hears_the_workers_after_redis_restarts(tmp_path):
    """top's live view and the exporter broadcast from one process for hours: after a Redis restart, the first broadcast
    must not fail on a pooled connection to the old server ("closed the connection at once") while the worker answers."""
    import subprocess
    import sys

    from conftest import REDIS_PASSWORD, start_worker, stop_worker
    from sync_helpers import restart_redis, wait_until

    from pmsops.checks.celery import broadcast
    from pmsops.sandbox.servers import RedisServer

    server = RedisServer(REDIS_PASSWORD, appendonly=True).start()
    worker = None
    try:
        url = server.url_for_db(0)
        worker = start_worker(url, "restart@pmsops-test", concurrency=1)
        assert list(broadcast(url, "ping", 3.0, expect=1).replies) == ["restart@pmsops-test"]
        restart_redis(server, down_seconds=0.5, keep_data=True)

        def answers_a_new_process() -> bool:  # the worker reconnected: a fresh process (no pool) hears it
            ping = [sys.executable, "-m", "pmsops", "celery", "ping", "--broker", url, "--timeout", "2"]
            return subprocess.run(ping, capture_output=True, timeout=30).returncode == 0

        wait_until(answers_a_new_process, 60, "the worker never reconnected after the Redis restart", interval=0.5)
        after = broadcast(url, "ping", 3.0, expect=1)
    finally:
        if worker is not None:
            stop_worker(worker)
        server.stop()
    assert list(after.replies) == ["restart@pmsops-test"]


FORGED = {
    "a list for stats": ({"stats": [1, 2], "active": [], "registered": [], "ping": {"ok": "pong"}}, {"stats"}),
    "text where numbers go": (
        {"stats": {"pid": "x", "total": {"t": "many"}, "pool": {"max-concurrency": "8"}}, "active": "nope", "registered": ["a"]},
        {"stats", "active"},
    ),
    "objects where lists go": ({"active": [1, "two"], "registered": [1, {"a": 2}], "stats": {"pool": "prefork"}}, {"stats", "active", "registered"}),
    "escapes in every text": (
        {"active": [{"id": "\x1b]52;c;aGk=\x07", "name": "\x1b[2J", "time_start": "0"}], "stats": {"total": []}, "registered": ["\x1b[32mALL OK"]},
        {"stats", "active"},
    ),
}


@pytest.mark.parametrize("forged", sorted(FORGED))
def test_a_forged_worker_reply_is_named_and_left_out_while_the_real_worker_is_shown(cli, worker_broker, celery_worker, forged):
    """#23 item 4: wrong-typed pidbox replies crashed celery stats/active/registered and top, hiding the real worker."""
    from pidbox_peer import ForgedNode

    answers, unreadable = FORGED[forged]
    node = ForgedNode(worker_broker, "forged@pmsops-test", answers)
    try:
        node.ready.wait(5)
        outputs = {
            c: cli("celery", c, "--broker", worker_broker, "--timeout", "2", "--expect", "2", "--json") for c in ("stats", "active", "registered")
        }
        top = cli("top", "--json", "--broadcast-timeout", "2", env={"CELERY_BROKER_URL": worker_broker})
    finally:
        node.close()
    named = set()
    for command, result in outputs.items():
        found = json.loads(result.stdout)["results"][0]
        assert ("Traceback" in result.output, "\x1b" in result.output, "w1@pmsops-test" in result.stdout) == (False, False, True), result.output
        if any(n.startswith("forged@pmsops-test: unreadable") for n in found["notes"]):
            named.add(command)
    workers = [w["name"] for w in json.loads(top.stdout)["workers"]["items"]]
    assert (named, "\x1b" in top.stdout, "w1@pmsops-test" in workers) == (unreadable, False, True)
