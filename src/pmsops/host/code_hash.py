"""Runbook: "Verify Code Version" and "Stale Code After Deployment".

A worker that restarts instead of being rebuilt, or a build served from cache,
keeps running old code while the backend runs new code. The runbook proves it
two ways: the SHA-256 of ``sync_engine.py`` inside the container against the
local checkout's, and ``git rev-parse HEAD`` in the backend against the worker.
"""

from __future__ import annotations

import re

from pmsops import results
from pmsops.errors import OperationError, UsageError
from pmsops.host.containers import inspect_container, require_running, state_result
from pmsops.host.docker import DEFAULT_TIMEOUT, exec_in, executable_missing
from pmsops.results import Result, run_check

DEFAULT_PATH = "/app/app/channel_manager/core/sync_engine.py"
STALE_HINT = (
    'stale code: Coolify → Deployments → Redeploy with "Disable build cache" on, and pin the commit SHA '
    "instead of the branch (runbook: Stale Code After Deployment)"
)
_PY_SHA256 = "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())"
_SHA = re.compile(r"^([0-9a-f]{64})\b")
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def local_sha256(path: str) -> str:
    """SHA-256 of a local file (the runbook's ``sha256sum backend/app/…/sync_engine.py``)."""
    try:
        from pmsops.safefile import sha256_regular

        return sha256_regular(path)  # a FIFO or device is refused, not hashed forever
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror}",
            hint="pass --local with the path in your checkout, e.g. backend/app/channel_manager/core/sync_engine.py",
        ) from None


def container_sha256(container: str, path: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """``docker exec CONTAINER sha256sum PATH`` (python3's hashlib when the image has no sha256sum)."""
    output = exec_in(container, ["sha256sum", path], timeout=timeout)
    if executable_missing(output):
        output = exec_in(container, ["python3", "-c", _PY_SHA256, path], timeout=timeout)
    match = _SHA.match(output.stdout.strip()) if output.ok else None
    if match:
        return match.group(1)
    if "No such file" in output.stderr + output.stdout:
        raise OperationError(
            f"{path} does not exist in {container}",
            hint=f"check the path (the runbook's is {DEFAULT_PATH}); the code may live elsewhere in this image",
        )
    raise OperationError(f"cannot hash {path} in {container} (exit {output.returncode})", hint="run by hand: docker exec CONTAINER sha256sum PATH")


def hash_result(container: str, path: str, local: str | None, timeout: float) -> Result:
    """Match → ok; differ → fail with the runbook's stale-code fix; no local file → the hash alone."""
    local_hash = local_sha256(local) if local else None
    remote = container_sha256(container, path, timeout)
    details = {"path": path, "container_sha256": remote, "local": local, "local_sha256": local_hash, "match": remote == local_hash if local else None}
    if local_hash is None:
        return results.ok(
            "code hash",
            f"{path} in {container}: sha256 {remote}",
            details=details,
            notes=["compare with your checkout: pass --local backend/app/channel_manager/core/sync_engine.py"],
        )
    notes = [f"{container}:{path}  {remote}", f"local {local}  {local_hash}"]
    if remote == local_hash:
        return results.ok("code hash", f"{path} in {container} matches {local} (sha256 {remote[:16]})", notes=notes, details=details)
    return results.fail(
        "code hash", f"{path} in {container} differs from {local}: the container runs other code", hint=STALE_HINT, notes=notes, details=details
    )


def git_head(container: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """``docker exec CONTAINER git rev-parse HEAD``; ``None`` when there is no git or no repository."""
    output = exec_in(container, ["git", "rev-parse", "HEAD"], timeout=timeout)
    head = output.stdout.strip()
    return head if output.ok and _COMMIT.match(head) else None


def commit_result(container: str, other: str, timeout: float) -> Result:
    """Both containers on the same commit, as the runbook's "Must match exactly"."""
    require_running(inspect_container(other, timeout))
    mine, theirs = git_head(container, timeout), git_head(other, timeout)
    missing = [name for name, head in ((container, mine), (other, theirs)) if head is None]
    if missing:
        return results.skip(
            "git commit", f"no git commit readable in {', '.join(missing)} (no git, or the image has no .git): compare file hashes instead"
        )
    details = {container: mine, other: theirs}
    if mine == theirs:
        return results.ok("git commit", f"{container} and {other} run commit {mine[:12]}", details=details)
    return results.fail(
        "git commit",
        f"{container} runs {mine[:12]}, {other} runs {theirs[:12]}: they must match exactly",
        hint="Redeploy both from the same commit; " + STALE_HINT,
        details=details,
    )


def check_code_hash(
    container: str = "pms-worker-v2",
    path: str = DEFAULT_PATH,
    local: str | None = None,
    compare_commit: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    with_state: bool = True,
) -> list[Result]:
    """``pmsops host code-hash``: the file hash against a local checkout, and optionally the git commits."""
    if not path.startswith("/"):
        raise UsageError(f"--path must be absolute inside the container, got {path!r}", hint=f"the runbook's is {DEFAULT_PATH}")
    if local:
        local_sha256(local)  # bad input is exit 2 before docker is asked anything
    inspected = require_running(inspect_container(container, timeout))
    out = [state_result(inspected)] if with_state else []
    out.append(hash_result(container, path, local, timeout))
    if compare_commit:
        out += run_check("git commit", lambda: commit_result(container, compare_commit, timeout))
    return out
