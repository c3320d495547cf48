"""Runbook: "Worker Starts with Wrong CMD (start_worker.sh Not Used)".

``docker inspect pms-worker-v2 --format 'Cmd={{json .Config.Cmd}}'`` against the
image's: if they differ, a Coolify Start Command override is active.
"""

from __future__ import annotations

import json

from host_helpers import fake_docker  # noqa: F401

START_CMD = '["bash","/app/scripts/ops/start_worker.sh"]'
COOLIFY_OVERRIDE = ["/bin/sh", "-c", "celery -A app.channel_manager.core.sync_engine:celery_app worker -l INFO"]


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


def test_worker_running_the_images_start_worker_sh_is_ok(cli, fake_docker):
    result = cli("host", "worker-cmd", "pms-worker-v2")

    assert result.exit_code == 0
    assert f"Cmd={START_CMD} comes from the image (no Start Command override)" in result.stdout


def test_start_command_override_is_reported_when_container_cmd_differs_from_image(cli, fake_docker):
    fake_docker.edit("pms-worker-v2", Cmd=COOLIFY_OVERRIDE)

    result = cli("host", "worker-cmd", "pms-worker-v2")

    assert result.exit_code == 1
    assert "Start Command override active: the container runs Cmd=[\"/bin/sh\",\"-c\",\"celery -A" in result.stdout
    assert f"its image's CMD is {START_CMD}" in result.stdout


def test_override_hint_gives_the_runbooks_fix_steps_in_order(cli, fake_docker):
    fake_docker.edit("pms-worker-v2", Cmd=COOLIFY_OVERRIDE)

    hint = results_by_name(cli("host", "worker-cmd", "--json").stdout)["start command"]["hint"]

    steps = ["Start Command: delete the text", "clear \"Commit SHA\"", "Dockerfile Location /Dockerfile.worker", "Redeploy (not Restart"]
    positions = [hint.index(step) for step in steps]
    assert positions == sorted(positions)
    assert f"verify: pmsops host worker-cmd pms-worker-v2  (expected Cmd {START_CMD})" in hint


def test_celery_run_as_a_shell_string_is_flagged_because_signals_reach_sh(cli, fake_docker):
    fake_docker.edit("pms-worker-v2", Cmd=COOLIFY_OVERRIDE)

    result = cli("host", "worker-cmd")

    assert "it runs as a shell string (/bin/sh -c 'celery -A" in result.stdout
    assert "start_worker.sh and its wait-for-deps preflight are skipped" in result.stdout


def test_entrypoint_override_counts_as_an_override_too(cli, fake_docker):
    fake_docker.edit("pms-worker-v2", Entrypoint=["celery"], Cmd=["-A", "app.channel_manager.core.sync_engine:celery_app", "worker"])

    assert "Start Command override active" in cli("host", "worker-cmd").stdout


def test_image_built_from_an_old_dockerfile_warns_without_claiming_an_override(cli, fake_docker):
    old = ["celery", "-A", "app.channel_manager.core.sync_engine:celery_app", "worker", "-l", "INFO"]
    fake_docker.edit("pms-worker-v2", Cmd=old)
    image = fake_docker.image("pms-worker-v2")
    image["Config"]["Cmd"] = old
    fake_docker.save("pms-worker-v2", image, kind="images")

    report = results_by_name(cli("host", "worker-cmd", "--json").stdout)

    assert report["start command"]["status"] == "warn"
    assert "no override, but the image's CMD" in report["start command"]["summary"]
    assert "backend/Dockerfile.worker" in report["start command"]["hint"]


def test_expect_accepts_another_start_command(cli, fake_docker):
    result = cli("host", "worker-cmd", "--expect", "bash /app/scripts/ops/start_worker.sh")

    assert result.exit_code == 0


def test_worker_running_as_root_warns_about_celerys_security_warning(cli, fake_docker):
    fake_docker.edit("pms-worker-v2", User="")

    result = cli("host", "worker-cmd", "--json")

    assert results_by_name(result.stdout)["user"]["status"] == "warn"
    assert result.exit_code == 0
    assert cli("host", "worker-cmd", "--strict").exit_code == 1


def test_restarted_container_running_an_older_image_than_its_tag_says_redeploy(cli, fake_docker):
    obj = fake_docker.inspect("pms-worker-v2")
    old_id = "sha256:" + "0" * 64
    obj["Image"] = old_id
    fake_docker.save("pms-worker-v2", obj)
    old_image = fake_docker.image("pms-worker-v2")
    old_image.update(Id=old_id, RepoTags=[])
    fake_docker.save("pms-worker-old", old_image, kind="images")

    image = results_by_name(cli("host", "worker-cmd", "--json").stdout)["image"]

    assert image["status"] == "warn"
    assert "runs an older image than" in image["summary"]
    assert "Redeploy" in image["hint"]


def test_the_container_is_compared_with_the_image_it_really_runs(cli, fake_docker):
    cli("host", "worker-cmd")

    image_id = fake_docker.inspect("pms-worker-v2")["Image"]
    assert ["image", "inspect", image_id] in fake_docker.calls()
