"""Runbook: "Verify Code Version" and "Stale Code After Deployment".

``docker exec pms-worker-v2 sha256sum /app/app/channel_manager/core/sync_engine.py``
vs ``sha256sum backend/app/channel_manager/core/sync_engine.py``, and
``git rev-parse HEAD`` in backend and worker ("Must match exactly"), in containers on
the real Docker engine (real sha256sum, python3 and git on a repository the test commits).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from host_helpers import fake_docker  # noqa: F401  (one test below asserts docker is never asked)

PATH = "/app/app/channel_manager/core/sync_engine.py"
DEPLOYED = '"""Channel sync engine (recorded stand-in)."""\n\nVERSION = "2025-12-29"\n'
GIT = {
    "GIT_AUTHOR_NAME": "pmsops",
    "GIT_AUTHOR_EMAIL": "dev@pmsops.invalid",
    "GIT_COMMITTER_NAME": "pmsops",
    "GIT_COMMITTER_EMAIL": "dev@pmsops.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_DATE": "2025-12-29T12:00:00Z",
    "GIT_COMMITTER_DATE": "2025-12-29T12:00:00Z",
}


@pytest.fixture
def checkout(tmp_path):
    local = tmp_path / "backend" / "app" / "channel_manager" / "core" / "sync_engine.py"
    local.parent.mkdir(parents=True)
    local.write_text(DEPLOYED, encoding="utf-8")
    return local


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


@pytest.fixture
def deployed(docker_scenario, monkeypatch, tmp_path):
    """``deployed(name, content=…, commit=True, tools=("git", "sha256sum"))``: a container on the real engine whose /app
    holds the sync engine file (and, with ``commit``, a git repository committed by the test); returns the commit.

    Only the ``tools`` named are on its PATH (from this machine's /usr, read-only); python3 always is.
    """
    engine = docker_scenario.engine
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    made: list[str] = []

    def make(name: str, content: str = DEPLOYED, commit: bool = True, tools: tuple[str, ...] = ("git", "sha256sum")) -> str | None:
        app = tmp_path / name / "app"
        target = app / PATH[len("/app/") :]
        target.parent.mkdir(parents=True)
        target.write_text(content, encoding="utf-8")
        head = None
        if commit:
            env = {**os.environ, **GIT}
            for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "deploy"]):
                subprocess.run(["git", *argv], cwd=app, env=env, check=True, capture_output=True, timeout=30)
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=app, env=env, check=True, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        bin_dir = tmp_path / name / "bin"
        bin_dir.mkdir()
        for tool in (*tools, "python3"):
            (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
        for path in (tmp_path, tmp_path / name, app, bin_dir):
            path.chmod(0o755)
        engine.docker(
            "run",
            "-d",
            "--name",
            name,
            "--user",
            "0",
            "--workdir",
            "/app",
            "--network",
            "coolify",
            "-v",
            "/usr:/usr:ro",
            "-v",
            f"{app}:/app:ro",
            "-v",
            f"{bin_dir}:/opt/tools:ro",
            "--env",
            "PATH=/opt/tools:/bin",
            "pmsops-base",
            "/bin/busybox",
            "sleep",
            "3600",
        )
        made.append(name)
        return head

    yield make
    docker_scenario.remove(*made)


def test_deployed_file_matching_the_local_checkout_is_ok(cli, deployed, checkout):
    deployed("pms-worker-v2")

    result = cli("host", "code-hash", "--container", "pms-worker-v2", "--path", PATH, "--local", str(checkout))

    assert result.exit_code == 0, result.output
    assert f"matches {checkout} (sha256 {hashlib.sha256(DEPLOYED.encode()).hexdigest()[:16]})" in result.stdout


def test_stale_code_after_deployment_fails_with_redeploy_without_cache(cli, deployed, checkout):
    deployed("pms-worker-v2")
    checkout.write_text(DEPLOYED + "\ndef new_retry_logic(): ...\n", encoding="utf-8")

    result = cli("host", "code-hash", "--local", str(checkout), "--json")

    code = results_by_name(result.stdout)["code hash"]
    assert result.exit_code == 1
    assert code["summary"] == f"{PATH} in pms-worker-v2 differs from {checkout}: the container runs other code"
    assert "Disable build cache" in code["hint"] and "pin the commit SHA" in code["hint"]
    assert code["details"]["container_sha256"] == hashlib.sha256(DEPLOYED.encode()).hexdigest()


def test_without_local_file_the_container_hash_alone_is_printed(cli, deployed):
    deployed("pms-worker-v2")

    result = cli("host", "code-hash")

    assert result.exit_code == 0, result.output
    assert hashlib.sha256(DEPLOYED.encode()).hexdigest() in result.stdout


def test_file_missing_in_the_container_says_so(cli, deployed):
    deployed("pms-worker-v2")

    result = cli("host", "code-hash", "--path", "/app/app/sync_engine.py")

    assert result.exit_code == 1
    assert "/app/app/sync_engine.py does not exist in pms-worker-v2" in result.stderr


def test_image_without_sha256sum_hashes_with_python3(cli, deployed, checkout):
    deployed("pms-worker-v2", tools=("git",))

    assert cli("host", "code-hash", "--local", str(checkout)).exit_code == 0


def test_unreadable_local_file_is_bad_input_exit_2_before_docker_is_asked(cli, fake_docker, tmp_path):
    """Kept on the fake: "docker was never called" needs the fake's call log."""
    result = cli("host", "code-hash", "--local", str(tmp_path / "nope.py"))

    assert result.exit_code == 2
    assert fake_docker.calls() == []


def test_relative_container_path_is_bad_input_exit_2(cli, deployed):
    assert cli("host", "code-hash", "--path", "app/channel_manager/core/sync_engine.py").exit_code == 2


def test_backend_and_worker_on_the_same_commit_is_ok(cli, deployed):
    commit = deployed("pms-worker-v2")
    assert deployed("pms-backend") == commit  # same content, same author and time: git gives the same commit

    result = cli("host", "code-hash", "--compare-commit", "pms-backend")

    assert result.exit_code == 0, result.output
    assert f"pms-worker-v2 and pms-backend run commit {commit[:12]}" in result.stdout


def test_worker_on_an_older_commit_than_the_backend_fails(cli, deployed):
    old = deployed("pms-worker-v2", content=DEPLOYED.replace("2025-12-29", "2025-12-01"))
    new = deployed("pms-backend")

    result = cli("host", "code-hash", "--compare-commit", "pms-backend")

    assert result.exit_code == 1
    assert f"pms-worker-v2 runs {old[:12]}, pms-backend runs {new[:12]}: they must match exactly" in result.stdout


def test_images_without_git_skip_the_commit_comparison_instead_of_failing(cli, deployed):
    deployed("pms-worker-v2", tools=("sha256sum",))
    deployed("pms-backend", tools=("sha256sum",))

    result = cli("host", "code-hash", "--compare-commit", "pms-backend", "--json")

    commit = results_by_name(result.stdout)["git commit"]
    assert result.exit_code == 0, result.output
    assert commit["status"] == "skip"
    assert "pms-worker-v2, pms-backend" in commit["summary"]
