"""doctor: every configured check at once, in a fixed order, bounded by each check's timeout."""

import json
import time

from test_check_health import CURRENT_UP


def _configure(monkeypatch, redis_url, db_url, broker_url, api_url):
    for name, value in {
        "REDIS_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker_url,
        "PMS_API_URL": api_url,
    }.items():
        if value:
            monkeypatch.setenv(name, value)


def test_doctor_with_everything_up_exits_0_in_fixed_order(cli, monkeypatch, redis_server, postgres, worker_broker, celery_worker, http_stub):
    http_stub.json("/health/ready", CURRENT_UP)
    _configure(monkeypatch, worker_broker, postgres.url, worker_broker, http_stub.url)
    result = cli("doctor", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.stdout
    names = [r["name"] for r in report["results"]]
    assert names[-4:] == ["redis", "db", "celery", "health"]
    assert names[0].startswith("redis-url")


def test_doctor_with_nothing_configured_is_not_success_and_names_what_to_set(cli):
    result = cli("doctor")
    assert result.exit_code == 2
    assert "set DATABASE_URL" in result.stdout and "set PMS_API_URL" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("nothing checked (5 skipped)")
    assert "--env-file FILE" in result.stdout.splitlines()[-1]


def test_black_holed_database_fails_doctor_within_its_timeout(cli, monkeypatch, redis_server, black_hole, worker_broker, celery_worker):
    _configure(monkeypatch, worker_broker, f"postgresql://u:p@127.0.0.1:{black_hole}/db", worker_broker, None)
    started = time.monotonic()
    result = cli("doctor", "--timeout", "1", "--json")
    elapsed = time.monotonic() - started
    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 1
    assert report["db"]["status"] == "fail" and report["redis"]["status"] == "ok"
    assert elapsed < 2.5


def test_doctor_runs_checks_concurrently_not_one_after_another(cli, monkeypatch, black_hole):
    hole = f"127.0.0.1:{black_hole}"
    _configure(monkeypatch, f"redis://:x@{hole}/0", f"postgresql://u:p@{hole}/db", None, f"http://{hole}")
    result = cli("doctor", "--timeout", "1", "--json")
    report = json.loads(result.stdout)
    spent = sum(r["duration_ms"] or 0 for r in report["results"])
    assert result.exit_code == 1
    # the checks' own times add up to more than the whole run took: they overlapped (no wall-clock threshold)
    assert spent > report["duration_ms"] * 1.2, (spent, report["duration_ms"])


def test_doctor_with_an_unencoded_redis_url_fails_it_once_and_still_checks_the_database(cli, monkeypatch, redis_server, postgres):
    """#24 item 2, #28: one bad URL no longer stops doctor (it was exit 2 before any check): the redis-url result names
    the variable and the characters, the checks that need it are skipped, and the database is still checked."""
    monkeypatch.setenv("REDIS_URL", f"redis://:p+ss=w@rd/#1@127.0.0.1:{redis_server.port}/0")
    monkeypatch.setenv("DATABASE_URL", postgres.url)
    result = cli("doctor", "--timeout", "1", "--json")
    found = {r["name"]: (r["status"], r["summary"][:64]) for r in json.loads(result.stdout)["results"]}
    assert (result.exit_code, found["redis-url"][0], found["redis"][0], found["celery"][0], found["db"][0]) == (1, "fail", "skip", "skip", "ok")
    assert found["redis-url"][1] == "REDIS_URL: the password contains raw '/' '#' (encode as %2F %23)"
