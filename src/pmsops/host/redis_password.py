"""Find Redis's ``requirepass`` the runbook's ways, and show only its fingerprint.

Runbook, "Verify Redis Password" / "Get Redis Password (requirepass)":
``docker inspect coolify-redis | grep -i requirepass`` (Option A) and
``docker exec -it coolify-redis cat /etc/redis/redis.conf | grep requirepass``
(Option B). Both print the password; here it is registered as a secret the moment
it is read and only its fingerprint (length and salted digest,
:func:`pmsops.redaction.fingerprint`) ever leaves this module.

Sources, in the order Redis itself gives them weight: the command line
(``--requirepass X``, also inside ``sh -c "redis-server …"``), the ``REDIS_PASSWORD``
variable (images such as Bitnami's read it), then redis.conf via ``docker exec cat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pmsops import results
from pmsops.errors import OperationError, UsageError
from pmsops.host.containers import (
    Container,
    command_words,
    inspect_container,
    register_secret_forms,
    requirepass_in,
    shell_script,
    state_result,
    variable_reference,
)
from pmsops.host.docker import DEFAULT_TIMEOUT, ContainerNotRunning, exec_in
from pmsops.passwords import read_requirepass_from_conf
from pmsops.redaction import fingerprint, fingerprint_fields
from pmsops.results import Result, run_check

CONF_PATHS = ("/etc/redis/redis.conf", "/usr/local/etc/redis/redis.conf")
"""Where redis.conf lives in the official image's documentation and in Coolify's Redis."""


@dataclass
class RequirePass:
    """The password (never in ``repr``) and where it was found."""

    value: str = field(repr=False)
    source: str
    note: str | None = None

    def fingerprint(self) -> str:
        return fingerprint(self.value)


def _from_command(container: Container) -> RequirePass | None:
    """``--requirepass`` in the command Docker runs; a ``$VAR`` is expanded only where a shell would."""
    for label, argv in (("Config.Cmd", container.cmd), ("Config.Entrypoint", container.entrypoint)):
        value = requirepass_in(argv or [])
        if value is None:
            continue
        in_shell = shell_script(argv or []) is not None
        source = f"{label}{' (sh -c)' if in_shell else ''} --requirepass"
        variable = variable_reference(value)
        if variable is None:
            return RequirePass(value, source)
        if not in_shell:
            return RequirePass(
                value,
                source,
                note=(
                    "the command passes an unexpanded $VARIABLE (exec form: no shell expands it), so Redis's password is that literal text, not the"
                    " variable's value"
                ),
            )
        if container.env.get(variable):
            return RequirePass(container.env[variable], f"{source} ${variable} (env {variable})")
    return None


def _from_env(container: Container) -> RequirePass | None:
    value = container.env.get("REDIS_PASSWORD")
    return RequirePass(value, "env REDIS_PASSWORD") if value else None


def conf_paths(container: Container) -> list[str]:
    """redis.conf files named on the command line first (``redis-server /path/redis.conf``), then the usual places."""
    named = [w for argv in (container.cmd, container.entrypoint) for w in command_words(argv or []) if w.endswith(".conf") and w.startswith("/")]
    return list(dict.fromkeys(named + list(CONF_PATHS)))


def _from_conf(container: Container, timeout: float) -> tuple[RequirePass | None, str]:
    """``docker exec CONTAINER cat PATH`` for each candidate; the reason when none holds requirepass."""
    tried: list[str] = []
    for path in conf_paths(container):
        try:
            output = exec_in(container.name, ["cat", path], timeout=timeout)
        except ContainerNotRunning:
            return None, "redis.conf not read: the container is not running"
        if not output.ok:
            tried.append(f"{path} (not readable)")
            continue
        try:
            return RequirePass(read_requirepass_from_conf(output.stdout, path), path), ""
        except UsageError as exc:
            tried.append(f"{path} ({exc.message.replace(' in ' + path, '')})")
    return None, "; ".join(tried)


def requirepass_of(container: Container, timeout: float = DEFAULT_TIMEOUT) -> RequirePass:
    """The requirepass of an inspected container; raises :class:`OperationError` when it has none."""
    found = _from_command(container) or _from_env(container)
    conf_reason = ""
    if found is None:
        found, conf_reason = _from_conf(container, timeout)
    if found is None:
        raise OperationError(
            f"no requirepass found for {container.name}: not in its command, not in REDIS_PASSWORD; {conf_reason}",
            hint="authentication looks off, and the runbook's Redis must require a password: set it in the Coolify Redis service and redeploy",
        )
    register_secret_forms(found.value)
    return found


def find_requirepass(container: str, timeout: float = DEFAULT_TIMEOUT) -> RequirePass:
    """Inspect ``container`` and find its requirepass (``compare-password-hash --container`` uses this)."""
    return requirepass_of(inspect_container(container, timeout), timeout)


def requirepass_result(found: RequirePass) -> Result:
    """Length and salted fingerprint; the runbook's ``echo -n "$REDIS_PASS" | sha256sum | cut -c1-16`` only with --reveal-fingerprint."""
    details = {"source": found.source, **fingerprint_fields(found.value)}
    notes = [found.note] if found.note else []
    if found.value == "":
        return results.fail("requirepass", f"empty ({found.source}): Redis accepts any client", details=details)
    return results.ok("requirepass", f"set ({found.source}): {found.fingerprint()}", notes=notes, details=details)


def check_redis_password(container: str = "coolify-redis", timeout: float = DEFAULT_TIMEOUT, with_state: bool = True) -> list[Result]:
    """``pmsops host redis-password``: where requirepass is set and its fingerprint; never the password."""
    inspected = inspect_container(container, timeout)
    out = [state_result(inspected)] if with_state else []
    return out + run_check("requirepass", lambda: requirepass_result(requirepass_of(inspected, timeout)))
