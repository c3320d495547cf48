"""``docker inspect`` of containers and images, as plain objects whose secrets are registered.

The moment a container's configuration is read, every value that could be a
secret (its environment, a ``--requirepass`` in its command) is registered with
the redactor: anything printed afterwards, a quoted log line included, is masked.
"""

from __future__ import annotations

import json
import re
import shlex
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

from pmsops import results
from pmsops.errors import DependencyError
from pmsops.host.docker import DEFAULT_TIMEOUT, ContainerNotRunning, raise_for_docker, run_docker, validate_name
from pmsops.redaction import redact, redact_argv, register_secret
from pmsops.results import Result
from pmsops.settings import is_secret_name, register_environment_secrets

_SECRETISH = re.compile(r"PASS|SECRET|TOKEN|KEY|AUTH|CREDENTIAL|DSN|PRIVATE|CERT", re.I)
_HARMLESS = {"true", "false", "yes", "no", "on", "off", "none", "null", "0", "1", "enabled", "disabled", "required", "optional"}
SHELLS = ("sh", "bash", "dash", "ash", "zsh")
_CACHE: ContextVar[dict[tuple[str, str], Any] | None] = ContextVar("pmsops_inspect_cache", default=None)


@contextmanager
def inspect_cache() -> Iterator[None]:
    """Inspect each container and image once per run: ``host check`` asks about the worker six times,
    and one consistent snapshot reads better than six slightly different ones."""
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def _cached(kind: str, name: str, timeout: float, inspect: Any) -> Any:
    cache = _CACHE.get()
    if cache is None:
        return inspect(name, timeout)
    if (kind, name) not in cache:
        cache[(kind, name)] = inspect(name, timeout)
    return cache[(kind, name)]


def parse_env_list(entries: list[str] | None) -> dict[str, str]:
    """Docker's ``Config.Env`` (``["K=V", …]``) as a dict; an entry without '=' has an empty value."""
    env: dict[str, str] = {}
    for entry in entries or []:
        name, _, value = entry.partition("=")
        env[name] = value
    return env


def register_secret_forms(value: str | None) -> None:
    """The value, in every form logs quote it in (:func:`pmsops.redaction.secret_forms`: ``repr``, JSON, …)."""
    if value:
        register_secret(value)


def register_env_secrets(env: dict[str, str]) -> None:
    """Register more than :func:`register_environment_secrets` does: Coolify names like
    ``SERVICE_PASSWORD_REDIS`` hide the word in the middle, logs quote values in ``repr``
    form, and a leak is worse than a mask."""
    register_environment_secrets(env)
    for name, value in env.items():
        if not value or value.lower() in _HARMLESS:
            continue
        if is_secret_name(name) or _SECRETISH.search(name):
            register_secret_forms(value)


def shell_script(argv: list[str]) -> str | None:
    """The script of ``sh -c SCRIPT`` / ``/bin/sh -c SCRIPT`` (the shell form of CMD), else ``None``."""
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in SHELLS and argv[1] in ("-c", "-lc", "-ec"):
        return argv[2]
    return None


def command_words(argv: list[str]) -> list[str]:
    """The words a command really passes: ``sh -c "redis-server --requirepass X"`` split as the shell would."""
    script = shell_script(argv)
    if script is None:
        return list(argv)
    try:
        return shlex.split(script, comments=True)
    except ValueError:  # unbalanced quotes: the shell would refuse it too; fall back to blanks
        return script.split()


def redact_script(script: str) -> str:
    """A shell script fit to show: every word redacted, even a secret the quoting split up
    (``'p'"'"'w'`` holds ``p'w`` in no contiguous form the redactor could match)."""
    try:
        words = shlex.split(script)
    except ValueError:
        return "(a shell script with unbalanced quotes, not shown)"
    masked = redact_argv(words)
    return redact(script) if masked == words else " ".join(masked)


def display_command(argv: list[str] | None) -> list[str] | None:
    """``argv`` redacted word by word (the script of ``sh -c`` as a script), for showing it."""
    if argv is None:
        return None
    if shell_script(argv) is not None:
        return [redact(argv[0]), argv[1], redact_script(argv[2]), *redact_argv(argv[3:])]
    return redact_argv(argv)


def requirepass_in(argv: list[str]) -> str | None:
    """The last ``--requirepass X`` (or ``--requirepass=X``) of a command; Redis keeps the last one."""
    words = command_words(argv)
    found: str | None = None
    for i, word in enumerate(words):
        if word == "--requirepass" and i + 1 < len(words):
            found = words[i + 1]
        elif word.startswith("--requirepass="):
            found = word.split("=", 1)[1]
    return found


def variable_reference(word: str) -> str | None:
    """``REDIS_PASSWORD`` for ``$REDIS_PASSWORD`` / ``${REDIS_PASSWORD}``: a command that names a variable."""
    match = re.fullmatch(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))", word)
    return (match.group(1) or match.group(2)) if match else None


@dataclass
class Container:
    """What the diagnostics need from ``docker inspect``; ``raw`` keeps the rest."""

    name: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return self.raw.get("Config") or {}

    @property
    def cmd(self) -> list[str] | None:
        return self.config.get("Cmd")

    @property
    def entrypoint(self) -> list[str] | None:
        return self.config.get("Entrypoint")

    @property
    def image(self) -> str:
        """``Config.Image``: the reference the container was created from (a tag, usually)."""
        return self.config.get("Image") or ""

    @property
    def image_id(self) -> str:
        """The top-level ``Image``: the ID the container really runs, whatever the tag points at now."""
        return self.raw.get("Image") or ""

    @property
    def user(self) -> str:
        return self.config.get("User") or ""

    @property
    def env(self) -> dict[str, str]:
        return parse_env_list(self.config.get("Env"))

    @property
    def process(self) -> list[str]:
        """``Path`` + ``Args``: what Docker actually started (entrypoint and command merged)."""
        path = self.raw.get("Path")
        return ([path] if path else []) + list(self.raw.get("Args") or [])

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        return (self.raw.get("NetworkSettings") or {}).get("Networks") or {}

    @property
    def state(self) -> dict[str, Any]:
        return self.raw.get("State") or {}

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running")) and not self.state.get("Restarting") and not self.state.get("Paused")

    def state_line(self) -> str:
        """``status exited, exit code 1`` (plus restarts/OOM): what ``docker ps`` would make you guess."""
        state = self.state
        parts = [f"status {state.get('Status') or 'unknown'}"]
        if not state.get("Running") or state.get("Restarting"):
            parts.append(f"exit code {state.get('ExitCode', '?')}")
        if state.get("OOMKilled"):
            parts.append("killed for lack of memory (OOMKilled)")
        if self.raw.get("RestartCount"):
            parts.append(f"{self.raw['RestartCount']} restarts")
        return ", ".join(parts)


def _parse_inspect(text: str, subject: str) -> dict[str, Any]:
    """One object from ``docker inspect``'s JSON array (or ``--format '{{json .}}'`` lines)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            data = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            data = None
    if isinstance(data, list):
        data = data[0] if data else None
    if not isinstance(data, dict):
        raise DependencyError(f"docker inspect gave no JSON object for {subject}", hint="is `docker` really the Docker CLI? try: docker version")
    return data


def inspect_container(name: str, timeout: float = DEFAULT_TIMEOUT) -> Container:
    """``docker inspect --type container NAME``, with its secrets registered before anything can print."""
    return _cached("container", name, timeout, _inspect_container)


def _inspect_container(name: str, timeout: float) -> Container:
    validate_name(name)
    output = raise_for_docker(run_docker(["inspect", "--type", "container", name], timeout=timeout), name)
    container = Container(name, _parse_inspect(output.stdout, name))
    register_env_secrets(container.env)
    for argv in (container.cmd or [], container.entrypoint or [], container.process):
        value = requirepass_in(argv)
        if value and variable_reference(value) is None:
            register_secret_forms(value)
    return container


def inspect_image(reference: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """``docker image inspect REF``: the image's own ``Config`` (its CMD and ENTRYPOINT)."""
    return _cached("image", reference, timeout, _inspect_image)


def _inspect_image(reference: str, timeout: float) -> dict[str, Any]:
    validate_name(reference, "image")
    output = raise_for_docker(run_docker(["image", "inspect", reference], timeout=timeout), reference, "image")
    image = _parse_inspect(output.stdout, reference)
    register_env_secrets(parse_env_list((image.get("Config") or {}).get("Env")))
    return image


def require_running(container: Container) -> Container:
    """Raise the runbook's one line when ``docker exec`` cannot work: the container is not up."""
    if not container.running:
        raise ContainerNotRunning(
            f"container {container.name} is not running ({container.state_line()})",
            hint=f"see why: pmsops host logs {container.name} (runbook: Worker Crashes on Startup)",
        )
    return container


def state_result(container: Container) -> Result:
    """``docker ps``'s "Up" vs "Exited", with the exit code the runbook asks you to look for."""
    name = f"{container.name} state"
    details = {
        "status": container.state.get("Status"),
        "running": container.running,
        "exit_code": container.state.get("ExitCode"),
        "restart_count": container.raw.get("RestartCount", 0),
        "started_at": container.state.get("StartedAt"),
    }
    if container.running:
        return results.ok(name, f"running since {container.state.get('StartedAt') or '?'}", details=details)
    return results.fail(
        name,
        f"container {container.name} is not running ({container.state_line()})",
        hint=f"see why: pmsops host logs {container.name} --since 24h (runbook: Worker Crashes on Startup)",
        details=details,
    )
