"""Runbook: "Worker Starts with Wrong CMD (start_worker.sh Not Used)".

Docker copies the image's CMD and ENTRYPOINT into a new container unless the
platform passes its own: a container whose ``Config.Cmd`` differs from its image's
therefore proves a Coolify "Start Command" override, which silently skips
``start_worker.sh`` and its wait-for-deps preflight. The runbook diagnoses it by
comparing ``docker inspect pms-worker-v2`` with ``docker inspect <image>``.
"""

from __future__ import annotations

import json
from typing import Any

from pmsops import results
from pmsops.host.containers import Container, display_command, inspect_container, inspect_image, redact_script, shell_script, state_result
from pmsops.host.docker import DEFAULT_TIMEOUT, ObjectNotFound
from pmsops.results import Result, run_check

EXPECTED_WORKER_CMD = ["bash", "/app/scripts/ops/start_worker.sh"]
"""``CMD ["bash", "/app/scripts/ops/start_worker.sh"]`` of backend/Dockerfile.worker."""

OVERRIDE_FIX = "\n".join(
    [
        "1. Coolify → {name} → General → Start Command: delete the text (leave it empty)",
        '2. Coolify → {name} → General → Git: clear "Commit SHA" (empty = build the latest commit)',
        "3. Build settings: Base Directory /backend, Dockerfile Location /Dockerfile.worker",
        "4. Deployments → Redeploy (not Restart: a restart reuses the old container and its command)",
        "verify: pmsops host worker-cmd {name}  (expected Cmd {expected})",
    ]
)

STALE_IMAGE_FIX = (
    "the image itself has the old CMD: check `grep -nE '^(CMD|ENTRYPOINT)' backend/Dockerfile.worker`, "
    "clear the pinned Git commit in Coolify and Redeploy (runbook: Worker Starts with Wrong CMD)"
)


def show(argv: list[str] | None) -> str:
    """A command the way the runbook prints it (``{{json .Config.Cmd}}``), each word redacted *before*
    JSON escaping: an escaped secret (``\\"`` for ``"``) would no longer match the redactor."""
    return json.dumps(display_command(argv), ensure_ascii=False, separators=(",", ":"))


def _shell_note(argv: list[str]) -> str | None:
    script = shell_script(argv)
    if script is None:
        return None
    script = redact_script(script)  # before shortening it: a cut secret no longer matches the redactor
    return (
        f"it runs as a shell string ({argv[0]} -c '{script[:60]}{'…' if len(script) > 60 else ''}'): "
        "start_worker.sh and its wait-for-deps preflight are skipped, and stop signals reach the shell, not celery"
    )


def _commands(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(Entrypoint, Cmd) with Docker's ``null`` and ``[]`` treated alike."""
    return list(config.get("Entrypoint") or []), list(config.get("Cmd") or [])


def start_command_result(container: Container, image: dict[str, Any], expected: list[str]) -> Result:
    """Fail on an override, warn when the image itself is not the runbook's, ok otherwise."""
    c_entry, c_cmd = _commands(container.config)
    i_entry, i_cmd = _commands(image.get("Config") or {})
    shown = f"Entrypoint={show(c_entry or None)} Cmd={show(c_cmd or None)}"
    notes = [
        f"container {container.name}: {shown}",
        f"image {str(image.get('Id', '?'))[:19]}: Entrypoint={show(i_entry or None)} Cmd={show(i_cmd or None)}",
    ]
    details = {
        "container": {"entrypoint": display_command(c_entry), "cmd": display_command(c_cmd)},
        "image": {"id": image.get("Id"), "entrypoint": display_command(i_entry), "cmd": display_command(i_cmd)},
        "expected_cmd": expected,
        "override": (c_entry, c_cmd) != (i_entry, i_cmd),
    }
    shell = _shell_note(c_entry + c_cmd)
    if shell:
        notes.append(shell)
    if details["override"]:
        return results.fail(
            "start command",
            f"Start Command override active: the container runs Cmd={show(c_cmd)}, its image's CMD is {show(i_cmd)}",
            hint=OVERRIDE_FIX.format(name=container.name, expected=show(expected)),
            notes=notes,
            details=details,
        )
    if c_cmd == expected or c_entry + c_cmd == expected:
        return results.ok("start command", f"Cmd={show(c_cmd)} comes from the image (no Start Command override)", notes=notes, details=details)
    return results.warn(
        "start command",
        f"no override, but the image's CMD {show(i_cmd)} is not the runbook's {show(expected)}",
        hint=STALE_IMAGE_FIX,
        notes=notes,
        details=details,
    )


def user_result(container: Container) -> Result:
    """Runbook "Worker Runs as Non-Root User": Celery warns (SecurityWarning) when run as root."""
    user = container.user
    if user in ("", "root", "0") or user.startswith(("0:", "root:")):
        return results.warn(
            "user",
            f"runs as root (Config.User {user or 'empty'}): Celery prints a SecurityWarning",
            hint="build with Dockerfile.worker, which switches to a non-root user (runbook: Alternative: Build with Dockerfile.worker)",
        )
    return results.ok("user", f"runs as {user} (not root)")


def image_tag_result(container: Container, timeout: float) -> Result:
    """Whether ``Config.Image`` still points at the image the container runs (a Restart keeps the old one)."""
    if not container.image or container.image == container.image_id:
        return results.skip("image", "the container was created from an image ID, not a tag")
    try:
        current = inspect_image(container.image, timeout).get("Id", "")
    except ObjectNotFound:
        return results.skip("image", f"tag {container.image} no longer exists (the image was rebuilt and pruned)")
    if current and current != container.image_id:
        return results.warn(
            "image",
            f"the container runs an older image than {container.image} now points to",
            hint="Restart reuses the old container: Redeploy to run the new image (runbook: Redeploy, NOT just restart)",
            details={"running": container.image_id, "tag_now": current},
        )
    return results.ok("image", f"runs the image {container.image} points to", details={"image_id": container.image_id})


def check_worker_cmd(
    container: str = "pms-worker-v2", expected: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT, with_state: bool = True
) -> list[Result]:
    """``pmsops host worker-cmd``: container CMD/ENTRYPOINT vs its image's, the user, and the image tag."""
    wanted = list(expected or EXPECTED_WORKER_CMD)
    inspected = inspect_container(container, timeout)
    image = inspect_image(inspected.image_id or inspected.image, timeout)
    out = [state_result(inspected)] if with_state else []
    out.append(start_command_result(inspected, image, wanted))
    out.append(user_result(inspected))
    out += run_check("image", lambda: image_tag_result(inspected, timeout))
    return out
