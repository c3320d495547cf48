"""The fake ``docker`` for the host tests: a scenario built from recorded Docker output.

``fake_docker`` copies ``tests/fake_docker/recorded`` (a healthy deployment:
coolify-redis, pms-backend, pms-worker-v2, their images, the worker's logs) into a
temporary scenario, puts the fake ``docker`` first on PATH, and returns a
:class:`FakeDocker` through which a test breaks exactly one thing. Import the
fixture into a test module: ``from host_helpers import fake_docker  # noqa: F401``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

FAKE_DIR = Path(__file__).parent / "fake_docker"
RECORDED = FAKE_DIR / "recorded"
REDIS_PASSWORD = "Xk9+pq=Lz@7w/Qr"
"""The recorded requirepass (its URL-encoded form is in the recorded Redis URLs)."""


class FakeDocker:
    """Edit the scenario the fake replays; every helper writes through at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(RECORDED, root, ignore=shutil.ignore_patterns("variants"))

    # --- docker inspect ------------------------------------------------------------------------------------------
    def _path(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{name}.json"

    def inspect(self, name: str) -> dict[str, Any]:
        """The recorded inspect object of a container (edit it, then :meth:`save`)."""
        return json.loads(self._path("containers", name).read_text(encoding="utf-8"))[0]

    def save(self, name: str, obj: dict[str, Any], kind: str = "containers") -> None:
        self._path(kind, name).write_text(json.dumps([obj], indent=4) + "\n", encoding="utf-8")

    def edit(self, name: str, **config: Any) -> None:
        """Replace keys of ``Config`` (Cmd=…, Entrypoint=…, User=…)."""
        obj = self.inspect(name)
        obj["Config"].update(config)
        self.save(name, obj)

    def env(self, name: str) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.inspect(name)["Config"]["Env"])

    def set_env(self, name: str, **values: str | None) -> None:
        """Set variables (``None`` removes one), keeping Docker's ``K=V`` list order."""
        env = self.env(name)
        for key, value in values.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.edit(name, Env=[f"{k}={v}" for k, v in env.items()])

    def stop(self, name: str, exit_code: int = 1) -> None:
        """As ``docker inspect`` shows a crashed container: exited, with its exit code."""
        obj = self.inspect(name)
        obj["State"].update({"Status": "exited", "Running": False, "Pid": 0, "ExitCode": exit_code, "FinishedAt": "2025-12-29T12:20:14.310Z"})
        self.save(name, obj)

    def remove(self, name: str) -> None:
        self._path("containers", name).unlink()

    def networks(self, name: str, *keep: str) -> None:
        obj = self.inspect(name)
        obj["NetworkSettings"]["Networks"] = {k: v for k, v in obj["NetworkSettings"]["Networks"].items() if k in keep}
        self.save(name, obj)

    def image(self, name: str) -> dict[str, Any]:
        return json.loads(self._path("images", name).read_text(encoding="utf-8"))[0]

    # --- docker exec / logs / the daemon -------------------------------------------------------------------------
    def inside(self, name: str, **changes: Any) -> None:
        """Change what ``docker exec`` finds in a container: files=, hosts=, git_head=, missing=."""
        path = self._path("exec", name)
        box = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(box.get(key), dict):
                box[key] = {**box[key], **value}
            else:
                box[key] = value
        path.write_text(json.dumps(box, indent=4), encoding="utf-8")

    def unresolvable(self, container: str, *names: str) -> None:
        path = self._path("exec", container)
        box = json.loads(path.read_text(encoding="utf-8"))
        for name in names:
            box["hosts"].pop(name, None)
        path.write_text(json.dumps(box, indent=4), encoding="utf-8")

    def logs(self, name: str, stdout: str = "", stderr: str = "") -> None:
        (self.root / "logs" / f"{name}.stdout").write_text(stdout, encoding="utf-8")
        (self.root / "logs" / f"{name}.stderr").write_text(stderr, encoding="utf-8")

    def logs_variant(self, name: str, variant: str) -> None:
        """Replay a recorded log variant (``tests/fake_docker/recorded/variants``)."""
        read = lambda suffix: (
            (RECORDED / "variants" / f"{variant}.{suffix}").read_text(encoding="utf-8")
            if (RECORDED / "variants" / f"{variant}.{suffix}").exists()
            else ""
        )
        self.logs(name, read("stdout"), read("stderr"))

    def daemon(self, state: str) -> None:
        """ "down", "permission" or "hang": how every docker command then fails."""
        (self.root / "daemon").write_text(state, encoding="utf-8")

    def calls(self) -> list[list[str]]:
        log = self.root / "calls.log"
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []

    # --- secrets -------------------------------------------------------------------------------------------------
    def use_secret(self, secret: str) -> None:
        """Put ``secret`` everywhere a real deployment keeps secrets: requirepass, env, URLs, redis.conf, logs."""
        encoded = quote(secret, safe="")
        redis = self.inspect("coolify-redis")
        cmd = redis["Config"]["Cmd"]
        cmd[cmd.index("--requirepass") + 1] = secret
        redis["Args"] = list(cmd)
        self.save("coolify-redis", redis)
        self.set_env("coolify-redis", REDIS_PASSWORD=secret)
        self.inside("coolify-redis", files={"/etc/redis/redis.conf": 'requirepass "' + secret.replace("\\", "\\\\").replace('"', '\\"') + '"\n'})
        url = f"redis://:{encoded}@coolify-redis:6379/0"
        for name in ("pms-backend", "pms-worker-v2"):
            self.set_env(
                name,
                REDIS_URL=url,
                CELERY_BROKER_URL=url,
                CELERY_RESULT_BACKEND=url,
                JWT_SECRET=secret,
                SUPABASE_JWT_SECRET=secret,
                ENCRYPTION_KEY=secret,
                DATABASE_URL=f"postgresql+asyncpg://postgres:{encoded}@supabase-db:5432/postgres",
                SERVICE_PASSWORD_REDIS=secret,
            )
        # The worker got a raw (unencoded) URL and another JWT secret: both must be diagnosed without showing either.
        self.set_env("pms-worker-v2", REDIS_URL=f"redis://:{secret}@coolify-redis:6379/0", JWT_SECRET=secret + "x")
        stderr = (RECORDED / "logs" / "pms-worker-v2.stderr").read_text(encoding="utf-8") + "".join(
            f"[2025-12-29 12:30:0{i},000: ERROR/MainProcess] {line}\n"
            for i, line in enumerate(
                [
                    f"consumer: Cannot connect to redis://:{secret}@coolify-redis:6379/0: Authentication required.",
                    f"AUTH {secret} failed: invalid username-password pair or user is disabled.",
                    f"settings: password={encoded} jwt_secret={secret}: Connection refused",
                    f"Authentication required: redis.from_url({'redis://:' + secret + '@coolify-redis'!r}) password={secret!r}",
                    f"config dump {json.dumps({'REDIS_PASSWORD': secret}, ensure_ascii=False)}: Temporary failure in name resolution",
                ]
            )  # each line carries a red flag, so `host logs` quotes it
        )
        self.logs(
            "pms-worker-v2", (RECORDED / "logs" / "pms-worker-v2.stdout").read_text(encoding="utf-8"), stderr + "Traceback (most recent call last):\n"
        )


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    """Scenario in ``tmp_path/docker``; a ``docker`` wrapper in ``tmp_path/bin`` first on PATH."""
    fake = FakeDocker(tmp_path / "docker")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "docker"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "{FAKE_DIR / "docker"}" "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_DOCKER_SCENARIO", str(fake.root))
    return fake


@pytest.fixture
def fake_docker(tmp_path, monkeypatch) -> FakeDocker:
    return install(tmp_path, monkeypatch)


@pytest.fixture
def no_docker(tmp_path, monkeypatch) -> None:
    """A PATH on which there is no ``docker`` at all."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
