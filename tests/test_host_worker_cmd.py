"""Runbook: "Worker Starts with Wrong CMD (start_worker.sh Not Used)".

``docker inspect pms-worker-v2 --format 'Cmd={{json .Config.Cmd}}'`` against the
image's: if they differ, a Coolify Start Command override is active. Images are
built with ``docker import`` and containers made from them on the real engine.
"""

from __future__ import annotations

import json

import io
import tarfile

import pytest

START_CMD = '["bash","/app/scripts/ops/start_worker.sh"]'
START = ["bash", "/app/scripts/ops/start_worker.sh"]
COOLIFY_OVERRIDE = ["/bin/sh", "-c", "celery -A app.channel_manager.core.sync_engine:celery_app worker -l INFO"]
TAG = "ro0wsk8gcs4wo4c0gk8wkgws:3f9a2c1e7b4d8a6f0e1c2b3a4d5e6f708192a3b4"
"""A Coolify image tag: <application uuid>:<commit>."""


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


@pytest.fixture
def worker(docker_scenario, monkeypatch):
    """``worker(cmd=…, image_cmd=…, user=…, entrypoint=…)``: an image built with ``docker import`` (busybox, ``bash`` and
    /app/scripts/ops/start_worker.sh, its CMD and USER) and a container pms-worker-v2 made from it, on the real engine."""
    from docker_engine import base_rootfs

    engine = docker_scenario.engine
    monkeypatch.setenv("DOCKER_HOST", engine.host)

    def image(cmd: list[str], marker: str = "v1") -> str:
        data = io.BytesIO(base_rootfs({"app": 10001}, [], {"/app": 10001}))
        with tarfile.open(fileobj=data, mode="a") as tar:
            bash = b'#!/bin/sh\nexec /bin/sh "$@"\n'  # busybox has no bash applet: bash is sh here
            info = tarfile.TarInfo("bin/bash")
            info.size, info.mode = len(bash), 0o755
            tar.addfile(info, io.BytesIO(bash))
            script = f"#!/bin/sh\necho '[worker] start_worker.sh active ({marker})'\nexec sleep 3600\n".encode()
            info = tarfile.TarInfo("app/scripts/ops/start_worker.sh")
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
        engine.docker("import", "--change", f"CMD {json.dumps(cmd)}", "--change", "USER app", "-", TAG, input=data.getvalue())
        return TAG

    def make(cmd: list[str] | None = None, image_cmd: list[str] = START, user: str | None = None, entrypoint: str | None = None) -> str:
        image(image_cmd)
        args = ["create", "--name", "pms-worker-v2", "--network", "coolify"]
        args += ["--user", user] if user is not None else []
        args += ["--entrypoint", entrypoint] if entrypoint is not None else []
        engine.docker(*args, TAG, *(cmd or []))
        engine.docker("start", "pms-worker-v2", check=False)  # an override may not start at all: Docker keeps its config anyway
        return "pms-worker-v2"

    make.image = image
    yield make
    docker_scenario.remove("pms-worker-v2")
    engine.docker("image", "rm", "-f", TAG, check=False)


def test_worker_running_the_images_start_worker_sh_is_ok(cli, worker):
    worker()

    result = cli("host", "worker-cmd", "pms-worker-v2")

    assert result.exit_code == 0, result.output
    assert f"Cmd={START_CMD} comes from the image (no Start Command override)" in result.stdout


def test_start_command_override_is_reported_when_container_cmd_differs_from_image(cli, worker):
    worker(cmd=COOLIFY_OVERRIDE)

    result = cli("host", "worker-cmd", "pms-worker-v2")

    assert result.exit_code == 1
    assert 'Start Command override active: the container runs Cmd=["/bin/sh","-c","celery -A' in result.stdout
    assert f"its image's CMD is {START_CMD}" in result.stdout


def test_override_hint_gives_the_runbooks_fix_steps_in_order(cli, worker):
    worker(cmd=COOLIFY_OVERRIDE)

    hint = results_by_name(cli("host", "worker-cmd", "--json").stdout)["start command"]["hint"]

    steps = ["Start Command: delete the text", 'clear "Commit SHA"', "Dockerfile Location /Dockerfile.worker", "Redeploy (not Restart"]
    positions = [hint.index(step) for step in steps]
    assert positions == sorted(positions)
    assert f"verify: pmsops host worker-cmd pms-worker-v2  (expected Cmd {START_CMD})" in hint


def test_celery_run_as_a_shell_string_is_flagged_because_signals_reach_sh(cli, worker):
    worker(cmd=COOLIFY_OVERRIDE)

    result = cli("host", "worker-cmd")

    assert "it runs as a shell string (/bin/sh -c 'celery -A" in result.stdout
    assert "start_worker.sh and its wait-for-deps preflight are skipped" in result.stdout


def test_entrypoint_override_counts_as_an_override_too(cli, worker):
    worker(cmd=["-A", "app.channel_manager.core.sync_engine:celery_app", "worker"], entrypoint="celery")

    assert "Start Command override active" in cli("host", "worker-cmd").stdout


def test_image_built_from_an_old_dockerfile_warns_without_claiming_an_override(cli, worker):
    old = ["celery", "-A", "app.channel_manager.core.sync_engine:celery_app", "worker", "-l", "INFO"]
    worker(image_cmd=old)

    report = results_by_name(cli("host", "worker-cmd", "--json").stdout)

    assert report["start command"]["status"] == "warn"
    assert "no override, but the image's CMD" in report["start command"]["summary"]
    assert "backend/Dockerfile.worker" in report["start command"]["hint"]


def test_expect_accepts_another_start_command(cli, worker):
    worker()

    result = cli("host", "worker-cmd", "--expect", "bash /app/scripts/ops/start_worker.sh")

    assert result.exit_code == 0, result.output


def test_worker_running_as_root_warns_about_celerys_security_warning(cli, worker):
    worker(user="root")

    result = cli("host", "worker-cmd", "--json")

    assert results_by_name(result.stdout)["user"]["status"] == "warn"
    assert result.exit_code == 0, result.output
    assert cli("host", "worker-cmd", "--strict").exit_code == 1


def test_restarted_container_running_an_older_image_than_its_tag_says_redeploy(cli, worker):
    worker()
    worker.image(START, marker="v2")  # a rebuild moved the tag; the container still runs the old image

    image = results_by_name(cli("host", "worker-cmd", "--json").stdout)["image"]

    assert image["status"] == "warn"
    assert "runs an older image than" in image["summary"]
    assert "Redeploy" in image["hint"]


def test_the_container_is_compared_with_the_image_it_really_runs(cli, worker):
    worker()
    worker.image(COOLIFY_OVERRIDE, marker="v2")  # the tag now names an image with another CMD

    result = results_by_name(cli("host", "worker-cmd", "--json").stdout)

    assert result["start command"]["status"] == "ok"
    assert result["start command"]["summary"] == f"Cmd={START_CMD} comes from the image (no Start Command override)"
