"""Run the ``docker`` CLI with a timeout and turn its failures into one clear line.

Every call goes through :func:`run_docker`, which always passes a timeout to
``subprocess.run`` (a hung daemon must not hang the operator's terminal) and never
uses a shell (container names and paths are arguments, not shell text).

Docker reports its own failures on stderr with exit code 1 (125 for ``docker
run``/``exec`` option errors); ``docker exec`` otherwise returns the exit code of
the command it ran. :func:`classify_failure` recognises Docker's own messages so a
command's failure (``getent`` exit 2) is never mistaken for Docker's and vice versa.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from pmsops.errors import DependencyError, UsageError

DEFAULT_TIMEOUT = 10.0
DOCKER = "docker"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/:@]*$")
_DOCKER_SPEAKS = re.compile(
    r"(Error response from daemon:|Cannot connect to the Docker daemon|permission denied while trying to connect|error during connect)", re.I
)
"""How Docker's own messages start; anything else on ``docker exec``'s stderr is the command's."""


class DockerError(DependencyError):
    """Docker itself failed (not the command run inside a container)."""


class DockerNotFound(DockerError):
    """The ``docker`` executable is not on PATH."""


class DaemonUnreachable(DockerError):
    """The CLI is there, the daemon is not."""


class DockerPermissionDenied(DockerError):
    """The user may not use the Docker socket."""


class ObjectNotFound(DockerError):
    """No container (or image) of that name."""


class ContainerNotRunning(DockerError):
    """``docker exec`` needs a running container."""


class DockerTimeout(DockerError):
    """The call took longer than its timeout."""


@dataclass
class DockerOutput:
    """What one ``docker`` call produced; ``argv`` never holds a secret (names and paths only)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def validate_name(name: str, what: str = "container") -> str:
    """Refuse names Docker would not accept, so a name can never be read as an option (``-x``)."""
    pattern = _REFERENCE if what == "image" else _NAME
    if not name or not pattern.match(name):
        raise UsageError(
            f"not a valid {what} name: {name!r}",
            hint="list the names with: docker ps -a --format '{{.Names}}'",
        )
    return name


def run_docker(args: list[str], timeout: float = DEFAULT_TIMEOUT, merge_stderr: bool = False) -> DockerOutput:
    """Run ``docker ARGS`` with a timeout; raise only when docker itself cannot run.

    ``merge_stderr`` sends the child's stderr into stdout in the order it was
    written (``docker logs`` writes the container's stderr to its own stderr).
    """
    argv = [DOCKER, *args]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            timeout=timeout,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except FileNotFoundError:
        raise DockerNotFound(
            "docker CLI not found on PATH",
            hint="run this on the host server (runbook: HOST-SERVER-TERMINAL), where Docker is installed",
        ) from None
    except PermissionError:
        raise DockerNotFound("docker CLI on PATH is not executable (permission denied)", hint="check: ls -l $(command -v docker)") from None
    except subprocess.TimeoutExpired:
        raise DockerTimeout(
            f"docker {' '.join(args[:2] if args[:1] in (['image'], ['container']) else args[:1])} timed out after {timeout:g} s",
            hint="the Docker daemon is slow or hung: check systemctl status docker, or retry with --timeout 30",
        ) from None
    return DockerOutput(argv, done.returncode, done.stdout or "", done.stderr or "")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def classify_failure(output: DockerOutput, subject: str, what: str = "container") -> DockerError | None:
    """The error Docker's own message stands for, or ``None`` if it is not Docker's."""
    text = (output.stderr or output.stdout).strip()
    endpoint = daemon_endpoint(text)
    if "Cannot connect to the Docker daemon" in text or "error during connect" in text:
        where = f" at {endpoint}" if endpoint else ""
        other = endpoint and endpoint != DEFAULT_SOCKET
        return DaemonUnreachable(
            f"cannot connect to the Docker daemon{where} (is it running?)",
            hint="check: systemctl status docker"
            + (
                f"; the CLI used {endpoint} (DOCKER_HOST or docker context ls): is that the daemon you mean?"
                if other
                else " (and DOCKER_HOST / docker context ls if you use a remote daemon)"
            ),
        )
    if re.search(r"permission denied while trying to connect to the docker (daemon|API)", text, re.I):
        socket_path = endpoint[len("unix://") :] if endpoint and endpoint.startswith("unix://") else (endpoint or "/var/run/docker.sock")
        return DockerPermissionDenied(
            f"permission denied on the Docker daemon socket ({socket_path})",
            hint="run with sudo, or add your user to the docker group: sudo usermod -aG docker $USER (then log in again)",
        )
    if re.search(r"No such (object|container|image)\b", text):
        kind = "image" if what == "image" or "No such image" in text else "container"
        hint = (
            "list containers: docker ps -a --format '{{.Names}}\\t{{.Status}}' (Coolify may name it <uuid>-<timestamp>)"
            if kind == "container"
            else "the image was removed (a rebuild or docker image prune): Redeploy the application"
        )
        return ObjectNotFound(f"{kind} {subject} not found", hint=hint)
    paused = re.search(r"container \S+ is paused", text, re.I)
    if paused or re.search(r"container \S+ is not running", text, re.I):
        state = "paused" if paused else "not running"
        return ContainerNotRunning(
            f"container {subject} is {state}",
            hint=f"see why: pmsops host logs {subject} (runbook: Worker Crashes on Startup)",
        )
    if text.startswith("Error response from daemon:") or text.startswith("Error:"):
        return DockerError(f"docker failed for {subject}: {_first_line(text)}")
    return None


DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_ENDPOINT = re.compile(r"\bat ((?:unix|tcp|npipe|ssh|https?)://[^\s\"]+?)(?=\.\s|\.$|:\s|\s|$)")


def daemon_endpoint(text: str) -> str | None:
    """The socket or address Docker's own message names ("… daemon at unix:///run/user/1000/docker.sock. Is …")."""
    match = _ENDPOINT.search(text)
    return match.group(1) if match else None


def daemon_answers(timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Does the daemon itself answer (``docker version`` within ``timeout``)? Tells a hung daemon from a slow command."""
    try:
        output = run_docker(["version", "--format", "{{.Server.Version}}"], timeout=timeout)
    except DockerError:
        return False
    return output.ok and bool(output.stdout.strip())


def raise_for_docker(output: DockerOutput, subject: str, what: str = "container") -> DockerOutput:
    """Raise the matching error if ``docker`` failed; return ``output`` otherwise."""
    if output.ok:
        return output
    error = classify_failure(output, subject, what)
    if error is None:
        sub = output.argv[1] if len(output.argv) > 1 else "docker"
        error = DockerError(
            f"docker {sub} failed for {subject} (exit {output.returncode}): {_first_line(output.stderr or output.stdout) or 'no message'}"
        )
    raise error


def exec_in(container: str, command: list[str], timeout: float = DEFAULT_TIMEOUT) -> DockerOutput:
    """``docker exec CONTAINER COMMAND…``: Docker's failures raise, the command's are returned.

    A missing executable inside the container is returned too (exit 126/127 with
    "executable file not found"): the caller decides whether another tool will do.
    """
    validate_name(container)
    output = run_docker(["exec", container, *command], timeout=timeout)
    if output.ok or executable_missing(output) or not _DOCKER_SPEAKS.match(output.stderr.lstrip()):
        return output
    raise classify_failure(output, container) or DockerError(f"docker exec failed in {container}: {_first_line(output.stderr)}")


def executable_missing(output: DockerOutput) -> bool:
    """Whether ``docker exec`` could not start the command (OCI "executable file not found")."""
    text = output.stderr + output.stdout
    return output.returncode in (126, 127) and ("executable file not found" in text or "no such file or directory" in text.lower())


def container_logs(container: str, since: str | None = None, tail: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """``docker logs`` with the container's stdout and stderr merged, in the order docker wrote them."""
    validate_name(container)
    args = ["logs"]
    if since:
        args += ["--since", since]
    if tail is not None:
        args += ["--tail", str(tail)]
    output = run_docker([*args, container], timeout=timeout, merge_stderr=True)
    if output.ok:
        return output.stdout
    error = classify_failure(output, container)
    raise error or DockerError(f"docker logs failed for {container} (exit {output.returncode}): {_first_line(output.stdout)}")
