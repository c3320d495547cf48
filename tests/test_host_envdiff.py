"""Runbook: "Required Environment Variables": "Copy ALL of these environment variables
from pms-backend to pms-worker" and "JWT secrets must EXACTLY match".

``pmsops host env-diff pms-backend pms-worker-v2`` reads ``Config.Env`` of both;
``pmsops env diff FILE_A FILE_B`` does the same for env files. Names and
fingerprints only: no value is ever shown.
"""

from __future__ import annotations

import hashlib
import json
import re

from host_engine import _deployment, deployment  # noqa: F401  (the recorded deployment on the real Docker engine)
from pmsops.host.envdiff import diff_environments

ENCODED = "redis://:Xk9%2Bpq%3DLz%407w%2FQr@coolify-redis:6379/0"


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


def fp(text: str, salt: str = "envdiff-test") -> str:
    """The documented fingerprint, recomputed with hashlib alone."""
    return f"len={len(text)} pbkdf2={hashlib.pbkdf2_hmac('sha256', text.encode(), salt.encode(), 100_000).hex()[:16]} salt={salt}"


def test_worker_with_the_backends_configuration_is_ok(cli, deployment):
    result = cli("host", "env-diff", "pms-backend", "pms-worker-v2")

    assert result.exit_code == 0
    assert "pms-worker-v2 has all 8 required variables" in result.stdout
    assert "the 6 Redis URLs agree on host, port and password" in result.stdout


def test_worker_missing_required_variables_is_told_which_by_name(cli, deployment):
    deployment.set_env("pms-worker-v2", ENCRYPTION_KEY=None, JWT_SECRET="", SUPABASE_JWT_SECRET=None)

    result = cli("host", "env-diff", "--json")

    required = results_by_name(result.stdout)["required variables"]
    assert result.exit_code == 1
    assert required["summary"] == "pms-worker-v2 lacks ENCRYPTION_KEY, JWT_SECRET, SUPABASE_JWT_SECRET"
    assert "copy them from pms-backend" in required["hint"]


def test_differing_jwt_secret_fails_and_shows_fingerprints_never_values(cli, deployment):
    backend_secret = deployment.env("pms-backend")["JWT_SECRET"]
    deployment.set_env("pms-worker-v2", JWT_SECRET="an-old-jwt-secret-from-last-year")

    result = cli("--fingerprint-salt", "envdiff-test", "host", "env-diff")

    assert result.exit_code == 1
    assert "JWT_SECRET differs between pms-backend and pms-worker-v2 (they must match exactly)" in result.stdout
    assert f"JWT_SECRET differs: pms-backend {fp(backend_secret)} vs pms-worker-v2 {fp('an-old-jwt-secret-from-last-year')}" in result.stdout
    assert "an-old-jwt-secret-from-last-year" not in result.output and backend_secret not in result.output


def test_differing_harmless_values_are_fingerprinted_too(cli, deployment):
    deployment.set_env("pms-worker-v2", LOG_LEVEL="DEBUG", CELERY_POOL="prefork")
    deployment.set_env("pms-backend", CELERY_POOL="threads")

    result = cli("--fingerprint-salt", "envdiff-test", "host", "env-diff", "--json")

    report = results_by_name(result.stdout)
    assert report["shared values"]["status"] == "warn"
    assert f"LOG_LEVEL differs: pms-backend {fp('INFO')} vs pms-worker-v2 {fp('DEBUG')}" in report["shared values"]["notes"]
    assert "DEBUG" not in json.dumps(report["shared values"]["details"])
    assert f"CELERY_POOL differs: pms-backend {fp('threads')} vs pms-worker-v2 {fp('prefork')}" in report["other variables"]["notes"]


def test_equal_secret_values_in_one_run_share_a_salt_so_a_difference_is_visible(cli, deployment):
    """Without --fingerprint-salt the salt is random, but one per run: both sides of a note are comparable."""
    deployment.set_env("pms-worker-v2", JWT_SECRET="an-old-jwt-secret-from-last-year")

    result = cli("host", "env-diff")

    [line] = [n for n in result.stdout.splitlines() if "JWT_SECRET differs:" in n]
    salts = re.findall(r"salt=([0-9a-f]+)", line)
    assert len(salts) == 2 and salts[0] == salts[1]
    assert hashlib.sha256(b"an-old-jwt-secret-from-last-year").hexdigest()[:16] not in result.output


def test_missing_feature_flags_and_optional_variables_warn(cli, deployment):
    deployment.set_env("pms-worker-v2", CHANNEL_MANAGER_ENABLED=None, SENTRY_DSN=None)
    deployment.set_env("pms-backend", SENTRY_DSN="https://abc123@o1.ingest.sentry.io/42")

    recommended = results_by_name(cli("host", "env-diff", "--json").stdout)["recommended variables"]

    assert recommended["status"] == "warn"
    assert recommended["details"]["missing"] == ["CHANNEL_MANAGER_ENABLED", "SENTRY_DSN"]


def test_worker_broker_with_another_password_fails_the_redis_url_comparison(cli, deployment):
    deployment.set_env("pms-worker-v2", CELERY_BROKER_URL="redis://:an-older-password@coolify-redis:6379/0")

    urls = results_by_name(cli("host", "env-diff", "--json").stdout)["redis urls"]

    assert urls["status"] == "fail"
    assert "pms-worker-v2 CELERY_BROKER_URL has another password than pms-backend REDIS_URL" in " ".join(urls["notes"])
    assert "an-older-password" not in json.dumps(urls)


def test_raw_unencoded_password_in_the_worker_url_is_misread_and_fails(cli, deployment):
    deployment.set_env("pms-worker-v2", REDIS_URL="redis://:Xk9+pq=Lz@7w/Qr@coolify-redis:6379/0")

    result = cli("host", "env-diff", "--json")

    urls = results_by_name(result.stdout)["redis urls"]
    assert urls["status"] == "fail"
    assert "pmsops encode-redis-password" in urls["hint"]
    assert "Xk9+pq=Lz@7w/Qr" not in result.output


def test_urls_written_differently_but_read_the_same_agree(deployment):
    backend = {"REDIS_URL": ENCODED, "CELERY_BROKER_URL": ENCODED, "CELERY_RESULT_BACKEND": ENCODED}
    worker = {**backend, "REDIS_URL": "redis://:Xk9%2bpq%3dLz%407w%2fQr@coolify-redis:6379"}  # lower-case escapes, default db

    urls = {r.name: r for r in diff_environments(backend, worker)}["redis urls"]

    assert urls.status.value == "ok"


def test_env_diff_of_two_env_files_compares_like_containers(cli, tmp_path):
    backend = tmp_path / "backend.env"
    worker = tmp_path / "worker.env"
    backend.write_text(f"export REDIS_URL='{ENCODED}'\nexport JWT_SECRET='s3cret-one'\nexport DATABASE_URL='postgresql://u:p@supabase-db/postgres'\n")
    worker.write_text(f"REDIS_URL='{ENCODED}'\nJWT_SECRET='s3cret-two'\n")

    result = cli("env", "diff", str(backend), str(worker))

    assert result.exit_code == 1
    assert f"{worker} lacks DATABASE_URL" in result.stdout
    assert "JWT_SECRET differs" in result.stdout
    assert "s3cret-one" not in result.output and "s3cret-two" not in result.output


def test_env_diff_files_do_not_expand_variables_from_the_operators_shell(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_SECRET", "from-my-shell")
    a, b = tmp_path / "a.env", tmp_path / "b.env"
    a.write_text("JWT_SECRET=${HOME_SECRET}-x\n")
    b.write_text("JWT_SECRET=from-my-shell-x\n")

    report = results_by_name(cli("env", "diff", str(a), str(b), "--json").stdout)

    assert report["shared values"]["details"]["differ"] == ["JWT_SECRET"]  # a's is "-x": the file alone decides


def test_env_diff_with_a_missing_file_is_bad_input_exit_2(cli, tmp_path):
    result = cli("env", "diff", str(tmp_path / "nope.env"), str(tmp_path / "nope2.env"))

    assert result.exit_code == 2
    assert "env file not found" in result.stderr
