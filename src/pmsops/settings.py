"""Settings come from the environment, named as in the runbook.

Precedence: command-line flags > ``--env-file`` (or ``--context``, ``PMSOPS_ENV_FILE``)
> process environment. The CLI keeps the env file's values in the run's state and
builds settings from the environment with them on top; it does not copy them into
``os.environ`` (only ``worker-start``/``wait-for-deps --`` and ``sync run`` hand them on,
to the program they exec and to the Celery app); flags are passed to functions explicitly.

Every secret variable is registered with the redactor as soon as settings are
read, and every URL variable has its password registered too, in all the forms a
parser might produce, so no output can show them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Mapping

from pmsops.errors import UsageError
from pmsops.redaction import Secret, register_secret

ALIASES: dict[str, tuple[str, ...]] = {
    "PMS_API_URL": ("PMS_API_URL", "API", "API_BASE_URL", "BACKEND_URL"),
    "ANON_KEY": ("ANON_KEY", "SUPABASE_ANON_KEY", "SB_ANON_KEY"),
    "TOKEN": ("TOKEN", "JWT_TOKEN"),
    "SB_URL": ("SB_URL", "SUPABASE_URL"),
    "CELERY_BROKER_URL": ("CELERY_BROKER_URL", "REDIS_URL"),
}
"""Canonical name → names read in order. The broker falls back to ``REDIS_URL``."""

REDIS_URL_VARIABLES = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
URL_VARIABLES = REDIS_URL_VARIABLES + ("DATABASE_URL", "SENTRY_DSN")

SECRET_VARIABLES = frozenset(
    {
        "PASSWORD",
        "ANON_KEY",
        "SUPABASE_ANON_KEY",
        "SB_ANON_KEY",
        "JWT_SECRET",
        "SUPABASE_JWT_SECRET",
        "ENCRYPTION_KEY",
        "TOKEN",
        "JWT_TOKEN",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SENTRY_DSN",
        "REDIS_PASSWORD",
        "REQUIREPASS",
    }
)
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_KEY|APIKEY)$")

WORKER_REQUIRED_VARIABLES = (
    "DATABASE_URL",
    "ENCRYPTION_KEY",
    "JWT_SECRET",
    "SUPABASE_JWT_SECRET",
    "JWT_AUDIENCE",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
)
"""What the runbook says the worker must share with the backend."""

WORKER_RECOMMENDED_VARIABLES = (
    "CHANNEL_MANAGER_ENABLED",
    "MODULES_ENABLED",
    "ENABLE_REDIS_HEALTHCHECK",
    "ENABLE_CELERY_HEALTHCHECK",
)


def is_secret_name(name: str) -> bool:
    """Whether a variable's value must never be shown (URLs are masked, not hidden)."""
    return name in SECRET_VARIABLES or bool(_SECRET_NAME.search(name))


def register_environment_secrets(env: Mapping[str, str]) -> None:
    """Register every secret value of ``env`` with the redactor (a URL's password whole, the pieces parsers cut as fragments)."""
    from pmsops.urlread import register_url_secrets

    for name, value in env.items():
        if not value:
            continue
        if is_secret_name(name):
            register_secret(value)
        if name.endswith("_URL") or name in URL_VARIABLES or "://" in value[:16]:
            register_url_secrets(value)


@dataclass(frozen=True)
class Settings:
    """A read-only view of the environment with the runbook's names and aliases."""

    env: Mapping[str, str]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        register_environment_secrets(env)
        return cls(env)

    def get(self, name: str, default: str | None = None) -> str | None:
        for candidate in ALIASES.get(name, (name,)):
            value = self.env.get(candidate)
            if value not in (None, ""):
                return value
        return default

    def source(self, name: str) -> str | None:
        """Which variable actually supplied ``name`` (for messages)."""
        for candidate in ALIASES.get(name, (name,)):
            if self.env.get(candidate):
                return candidate
        return None

    def require(self, name: str, hint: str | None = None) -> str:
        value = self.get(name)
        if value is None:
            names = " or ".join(ALIASES.get(name, (name,)))
            raise UsageError(
                f"{names} is not set",
                hint=hint or "export it, or pass --env-file /root/pms_env.sh",
            )
        return value

    def secret(self, name: str) -> Secret | None:
        value = self.get(name)
        return Secret(value) if value is not None else None


# --- typed values: one parser per type, for every setting -------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ConfigError(UsageError):
    """A setting has a value we cannot use (exit 2)."""


def _text(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def parse_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    value = _text(env, name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise ConfigError(f"{name} must be a finite number ≥ {minimum:g}, got {value!r}")
    return number


def parse_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    value = _text(env, name)
    if not value:
        return default
    if not value.lstrip("-").isdigit():
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    number = int(value)
    if number < minimum:
        raise ConfigError(f"{name} must be ≥ {minimum}, got {value!r}")
    return number


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); empty means the default; anything else is an error."""
    value = _text(env, name).lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")
