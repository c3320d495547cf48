"""The sync library end to end: real PostgreSQL, real Redis, a real worker, a fake platform on loopback."""

from __future__ import annotations

import pytest

from sync_helpers import seed_connection, trigger, wait_final


@pytest.fixture(autouse=True)
def _fresh_platform(fake_platform):
    fake_platform.reset()
    yield


def test_availability_push_succeeds_and_closes_booked_nights(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, bookings=[(2, 3)])
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "availability")
    [log] = wait_final(sync_db, triggered.task_ids)
    assert log["status"] == "success", (log["error"], log["details"])
    assert log["operation_type"] == "availability_update" and log["direction"] == "outbound"
    assert log["details"]["platform"] == "airbnb" and log["details"]["unavailable_nights"] == 3
    [call] = fake_platform.received("calendar")
    assert call["listing"] == ids["listing"]
    closed = [r for r in call["body"]["ranges"] if not r["available"]]
    assert len(closed) == 1


def test_pricing_push_sends_every_nightly_rate(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, platform="booking_com", rates_days=7)
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "pricing")
    [log] = wait_final(sync_db, triggered.task_ids)
    assert log["status"] == "success", log
    assert log["details"]["nights"] == 7
    [call] = fake_platform.received("rates")
    assert call["body"]["currency"] == "EUR" and len(call["body"]["prices"]) == 7


def test_bookings_pull_imports_reservations_idempotently(sync_db, sync_worker, fake_platform):
    from datetime import date, timedelta

    ids = seed_connection(sync_db, platform="expedia")
    start = date.today() + timedelta(days=20)
    fake_platform.set_reservations(
        ids["listing"], [{"id": "EXP-1", "check_in": start.isoformat(), "check_out": (start + timedelta(days=2)).isoformat(), "guest_name": "Ada"}]
    )
    first = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "bookings")
    [log] = wait_final(sync_db, first.task_ids)
    assert log["status"] == "success", log
    assert log["direction"] == "inbound" and log["operation_type"] == "bookings_sync"
    assert log["details"]["created"] == 1
    again = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "bookings")
    [log2] = wait_final(sync_db, again.task_ids)
    assert log2["details"]["created"] == 0 and log2["details"]["unchanged"] == 1


def test_overlapping_import_is_stored_as_conflict_not_double_booked(sync_db, sync_worker, fake_platform):
    from datetime import date, timedelta

    from sync_helpers import run

    ids = seed_connection(sync_db, platform="fewo_direkt", bookings=[(10, 4)])
    overlap = date.today() + timedelta(days=12)
    fake_platform.set_reservations(
        ids["listing"], [{"id": "FEWO-9", "check_in": overlap.isoformat(), "check_out": (overlap + timedelta(days=3)).isoformat()}]
    )
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "bookings")
    [log] = wait_final(sync_db, triggered.task_ids)
    assert log["status"] == "success", log
    [conflict] = log["details"]["conflicts"]
    assert conflict["external_id"] == "FEWO-9" and conflict["overlaps_booking_id"]
    statuses = run(
        sync_db, lambda c: c.fetch("SELECT external_id, status FROM bookings WHERE property_id = $1::uuid ORDER BY check_in", ids["property_id"])
    )
    assert [r["status"] for r in statuses] == ["confirmed", "conflict"]


def test_full_sync_creates_three_logs_under_one_batch(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, platform="google")
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "full")
    assert triggered.batch_id and len(triggered.task_ids) == 3
    rows = wait_final(sync_db, triggered.task_ids)
    assert {r["operation_type"] for r in rows} == {"availability_update", "pricing_update", "bookings_sync"}
    assert {str(r["batch_id"]) for r in rows} == {triggered.batch_id}
    assert all(r["status"] == "success" for r in rows), rows


def test_platform_5xx_retries_with_doubling_backoff_then_fails(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, platform="expedia")
    fake_platform.fail_next(503, count=10, platform="expedia")
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "availability")
    [log] = wait_final(sync_db, triggered.task_ids, timeout=30)
    assert log["status"] == "failed"
    assert log["error"].startswith("Platform error after 3 retries:")
    assert log["details"]["retry_count"] == 3 and log["details"]["error_type"] == "platform_error"
    times = [c["at"] for c in fake_platform.received("availability")]
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:])]
    for gap, expected in zip(gaps, (0.05, 0.1, 0.2)):  # SYNC_RETRY_BASE=0.05 in the test worker: base × 2^n
        assert expected - 0.02 <= gap <= expected + 0.5, gaps


def test_transient_failure_recovers_and_records_retry_count(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, platform="airbnb")
    fake_platform.fail_next(502, count=1, platform="airbnb")
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "pricing")
    [log] = wait_final(sync_db, triggered.task_ids)
    assert log["status"] == "success", log
    assert log["details"]["retry_count"] == 1
    assert log["details"]["next_retry_seconds"] == 0.05


def test_platform_401_fails_at_once_without_retry(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, platform="booking_com")
    fake_platform.fail_next(401, count=5, platform="booking_com")
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "availability")
    [log] = wait_final(sync_db, triggered.task_ids)
    assert log["status"] == "failed"
    assert log["details"]["error_type"] == "authentication_error" and log["details"]["retry_count"] == 0
    assert len(fake_platform.received("availability")) == 1


def test_rate_limited_429_honours_retry_after(sync_db, sync_worker, fake_platform):
    ids = seed_connection(sync_db, platform="google")
    fake_platform.fail_next(429, count=1, retry_after=3, platform="google")
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "availability")
    [log] = wait_final(sync_db, triggered.task_ids)
    assert log["status"] == "success", log
    first, second = [c["at"] for c in fake_platform.received("availability")]
    assert second - first >= 2.9
    assert log["details"]["next_retry_seconds"] == 3


@pytest.fixture
def observed_worker(redis_server, sync_db, fake_platform):
    """A worker of its own whose log lines the test reads (db 12: no other worker consumes it)."""
    from conftest import start_worker, stop_worker, sync_worker_env
    from sync_helpers import WorkerOutput

    env = sync_worker_env(redis_server, 12, sync_db, fake_platform.url)
    proc = start_worker(env["CELERY_BROKER_URL"], "observed@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
    yield env, WorkerOutput(proc)
    stop_worker(proc)


def test_sync_of_an_unknown_connection_fails_at_once_as_not_found_and_leaves_no_log(sync_db, observed_worker):
    import uuid

    from sync_helpers import logs_for, run, sender_for

    env, output = observed_worker
    task_id, missing = str(uuid.uuid4()), str(uuid.uuid4())
    sender_for(env["CELERY_BROKER_URL"])("pmsops.sync.availability_push", missing, task_id)
    line = output.wait_for(f"Sync task {task_id} failed")
    assert f"Sync task {task_id} failed (not_found): Not found: channel connection {missing} not found" in line, line
    assert not [l for l in output.lines if f"Retrying task {task_id}" in l]  # permanent: no retry
    assert logs_for(sync_db, [task_id]) == [None]  # a log row cannot reference a missing connection: none written, none left open
    assert run(sync_db, lambda c: c.fetchval("SELECT count(*) FROM channel_sync_logs WHERE connection_id = $1::uuid", missing)) == 0


def test_connection_pointing_at_another_agencys_property_is_refused_without_a_platform_call(sync_db, sync_worker, fake_platform):
    from sync_helpers import seed_cross_tenant_connection

    ids = seed_cross_tenant_connection(sync_db, platform="airbnb")
    fake_platform.set_reservations(ids["listing"], [{"id": "HM-XT-1", "check_in": "2031-01-10", "check_out": "2031-01-12", "guest_name": "Mallory"}])
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "full")
    rows = wait_final(sync_db, triggered.task_ids)
    assert [r["status"] for r in rows] == ["failed", "failed", "failed"], rows
    assert {r["details"]["error_type"] for r in rows} == {"tenant_mismatch"}
    assert {r["details"]["retry_count"] for r in rows} == {0}
    for row in rows:
        expected = f"Tenant mismatch: channel connection {ids['connection_id']} belongs to another agency than its property"
        assert row["error"].startswith(expected), row["error"]
    import uuid

    from sync_helpers import run, sender_for

    by_hand = str(uuid.uuid4())  # a task enqueued without a trigger: adopted, then refused the same way
    sender_for(sync_worker["CELERY_BROKER_URL"])("pmsops.sync.bookings_pull", ids["connection_id"], by_hand)
    [adopted] = wait_final(sync_db, [by_hand])
    outcome = (adopted["status"], adopted["details"]["error_type"], str(adopted["tenant_id"]))
    assert outcome == ("failed", "tenant_mismatch", ids["intruder_agency_id"])
    assert [c for c in fake_platform.received() if c["listing"] == ids["listing"]] == []
    assert run(sync_db, lambda c: c.fetchval("SELECT count(*) FROM bookings WHERE external_id = 'HM-XT-1'")) == 0


def test_platform_token_is_stored_encrypted(sync_db):
    from sync_helpers import run

    ids = seed_connection(sync_db, token="super-secret-platform-token")
    stored = run(sync_db, lambda c: c.fetchval("SELECT access_token_encrypted FROM channel_connections WHERE id = $1::uuid", ids["connection_id"]))
    assert "super-secret-platform-token" not in stored
    from conftest import ENCRYPTION_KEY
    from pmsops.sync.crypto import decrypt

    assert decrypt(stored, ENCRYPTION_KEY) == "super-secret-platform-token"


def test_a_trigger_does_not_fail_an_older_open_log_it_cannot_see_in_the_broker(sync_db):
    from sync_helpers import run

    from pmsops.sync.trigger import trigger_sync

    ids = seed_connection(sync_db)
    run(
        sync_db,
        lambda c: c.execute(
            "INSERT INTO channel_sync_logs (connection_id, operation_type, status, updated_at) VALUES ($1::uuid, 'availability_update', 'running',"
            " now() - interval '2 hours')",
            ids["connection_id"],
        ),
    )
    run(sync_db, lambda c: trigger_sync(c, ids["connection_id"], "pricing", send=lambda *a: None))
    status = run(
        sync_db,
        lambda c: c.fetchval(
            "SELECT status FROM channel_sync_logs WHERE connection_id = $1::uuid AND operation_type = 'availability_update'", ids["connection_id"]
        ),
    )
    assert status == "running"  # only the sweeper, which sees the broker, settles open logs


def test_broker_down_at_trigger_fails_the_logs_instead_of_leaving_them_triggered(sync_db):
    from sync_helpers import logs_for, run

    from pmsops.errors import DependencyError
    from pmsops.sync.trigger import trigger_sync

    ids = seed_connection(sync_db)

    def broken(*_):
        raise ConnectionError("Error 111 connecting to redis://:secret@127.0.0.1:1/0. Connection refused.")

    with pytest.raises(DependencyError) as caught:
        run(sync_db, lambda c: trigger_sync(c, ids["connection_id"], "full", send=broken))
    assert "secret" not in str(caught.value)
    rows = run(sync_db, lambda c: c.fetch("SELECT status, error FROM channel_sync_logs WHERE connection_id = $1::uuid", ids["connection_id"]))
    assert len(rows) == 3 and {r["status"] for r in rows} == {"failed"}


def test_a_pricing_push_does_not_move_the_bookings_cursor(sync_db, sync_worker, fake_platform):
    from datetime import datetime

    ids = seed_connection(sync_db, platform="airbnb")
    first = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "bookings")
    wait_final(sync_db, first.task_ids)
    pricing = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "pricing")
    [priced] = wait_final(sync_db, pricing.task_ids)
    second = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "bookings")
    wait_final(sync_db, second.task_ids)
    pulls = [c for c in fake_platform.received("reservations") if c["listing"] == ids["listing"]]
    since = datetime.fromisoformat(pulls[-1]["since"])
    assert since < priced["updated_at"]  # from the first pull's start, not the pricing push's finish


def test_a_redelivered_task_of_a_finished_operation_does_not_push_again(sync_db, sync_worker, fake_platform):
    from sync_helpers import sender_for

    ids = seed_connection(sync_db, platform="google")
    triggered = trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "availability")
    [first] = wait_final(sync_db, triggered.task_ids)
    assert first["status"] == "success", first
    sender_for(sync_worker["CELERY_BROKER_URL"])(
        "pmsops.sync.availability_push", ids["connection_id"], triggered.task_ids[0]
    )  # the same message again

    from sync_helpers import logs_for, wait_until

    [again] = wait_until(
        lambda: [r for r in logs_for(sync_db, triggered.task_ids) if r["details"].get("duplicate_deliveries")],
        20,
        "the second delivery was never recorded",
    )
    assert (again["status"], again["details"]["duplicate_deliveries"]) == ("success", 1)
    assert len([c for c in fake_platform.received("availability") if c["listing"] == ids["listing"]]) == 1
