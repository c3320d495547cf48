"""Runbook: "Verify Code Version" and "Stale Code After Deployment".

``docker exec pms-worker-v2 sha256sum /app/app/channel_manager/core/sync_engine.py``
vs ``sha256sum backend/app/channel_manager/core/sync_engine.py``, and
``git rev-parse HEAD`` in backend and worker ("Must match exactly").
"""

from __future__ import annotations

import hashlib
import json

import pytest

from host_helpers import fake_docker  # noqa: F401

PATH = "/app/app/channel_manager/core/sync_engine.py"
DEPLOYED = '"""Channel sync engine (recorded stand-in)."""\n\nVERSION = "2025-12-29"\n'
COMMIT = "3f9a2c1e7b4d8a6f0e1c2b3a4d5e6f708192a3b4"


@pytest.fixture
def checkout(tmp_path):
    local = tmp_path / "backend" / "app" / "channel_manager" / "core" / "sync_engine.py"
    local.parent.mkdir(parents=True)
    local.write_text(DEPLOYED, encoding="utf-8")
    return local


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


def test_deployed_file_matching_the_local_checkout_is_ok(cli, fake_docker, checkout):
    result = cli("host", "code-hash", "--container", "pms-worker-v2", "--path", PATH, "--local", str(checkout))

    assert result.exit_code == 0
    assert f"matches {checkout} (sha256 {hashlib.sha256(DEPLOYED.encode()).hexdigest()[:16]})" in result.stdout


def test_stale_code_after_deployment_fails_with_redeploy_without_cache(cli, fake_docker, checkout):
    checkout.write_text(DEPLOYED + "\ndef new_retry_logic(): ...\n", encoding="utf-8")

    result = cli("host", "code-hash", "--local", str(checkout), "--json")

    code = results_by_name(result.stdout)["code hash"]
    assert result.exit_code == 1
    assert code["summary"] == f"{PATH} in pms-worker-v2 differs from {checkout}: the container runs other code"
    assert "Disable build cache" in code["hint"] and "pin the commit SHA" in code["hint"]
    assert code["details"]["container_sha256"] == hashlib.sha256(DEPLOYED.encode()).hexdigest()


def test_without_local_file_the_container_hash_alone_is_printed(cli, fake_docker):
    result = cli("host", "code-hash")

    assert result.exit_code == 0
    assert hashlib.sha256(DEPLOYED.encode()).hexdigest() in result.stdout


def test_file_missing_in_the_container_says_so(cli, fake_docker):
    result = cli("host", "code-hash", "--path", "/app/app/sync_engine.py")

    assert result.exit_code == 1
    assert "/app/app/sync_engine.py does not exist in pms-worker-v2" in result.stderr


def test_image_without_sha256sum_hashes_with_python3(cli, fake_docker, checkout):
    fake_docker.inside("pms-worker-v2", missing=["sha256sum"])

    assert cli("host", "code-hash", "--local", str(checkout)).exit_code == 0


def test_unreadable_local_file_is_bad_input_exit_2_before_docker_is_asked(cli, fake_docker, tmp_path):
    result = cli("host", "code-hash", "--local", str(tmp_path / "nope.py"))

    assert result.exit_code == 2
    assert fake_docker.calls() == []


def test_relative_container_path_is_bad_input_exit_2(cli, fake_docker):
    assert cli("host", "code-hash", "--path", "app/channel_manager/core/sync_engine.py").exit_code == 2


def test_backend_and_worker_on_the_same_commit_is_ok(cli, fake_docker):
    fake_docker.inside("pms-worker-v2", git_head=COMMIT)
    fake_docker.inside("pms-backend", git_head=COMMIT)

    result = cli("host", "code-hash", "--compare-commit", "pms-backend")

    assert result.exit_code == 0
    assert f"pms-worker-v2 and pms-backend run commit {COMMIT[:12]}" in result.stdout


def test_worker_on_an_older_commit_than_the_backend_fails(cli, fake_docker):
    fake_docker.inside("pms-worker-v2", git_head="a" * 40)
    fake_docker.inside("pms-backend", git_head=COMMIT)

    result = cli("host", "code-hash", "--compare-commit", "pms-backend")

    assert result.exit_code == 1
    assert f"pms-worker-v2 runs aaaaaaaaaaaa, pms-backend runs {COMMIT[:12]}: they must match exactly" in result.stdout


def test_images_without_git_skip_the_commit_comparison_instead_of_failing(cli, fake_docker):
    fake_docker.inside("pms-backend", missing=["git"])

    result = cli("host", "code-hash", "--compare-commit", "pms-backend", "--json")

    commit = results_by_name(result.stdout)["git commit"]
    assert result.exit_code == 0
    assert commit["status"] == "skip"
    assert "pms-worker-v2, pms-backend" in commit["summary"]
