"""Runbook: "Networks (CRITICAL)" and "Network Configuration".

The worker needs the ``coolify`` network (Redis) *and* the Supabase network (the
database). Missing the second shows up far away, as "Database temporarily
unavailable" or "Temporary failure in name resolution" in the worker's logs; here
it is read from ``NetworkSettings.Networks`` and proven by resolving the database
and Redis host names from inside the container (``docker exec … getent hosts``).
"""

from __future__ import annotations

import ipaddress
import re

from pmsops import results
from pmsops.host.containers import Container, inspect_container, require_running, state_result
from pmsops.host.docker import DEFAULT_TIMEOUT, DockerTimeout, daemon_answers, exec_in, executable_missing
from pmsops.results import Result, run_check

DEFAULT_REQUIRED = ("coolify",)
DEFAULT_DB_HOST = "supabase-db"
DEFAULT_REDIS_HOST = "coolify-redis"
SUPABASE_NETWORK_EXAMPLE = "bccg4gs4o4kgsowocw08wkw4"

_PY_RESOLVE = "import socket,sys; print(socket.getaddrinfo(sys.argv[1], None)[0][4][0])"
"""Fallback when the image has no ``getent`` (slim images always have python3)."""


def intended_host(url: str | None) -> str | None:
    """The host a URL's author meant (after the *last* '@'), without port; ``None`` if there is none.

    The author's split comes from :func:`pmsops.urlread.split_raw`, not ``urlsplit``:
    with a raw '/' in the password ``urlsplit`` returns a piece of the password as
    host, which must never be passed to ``getent`` or printed.
    """
    from urllib.parse import unquote

    from pmsops.urlread import split_raw

    raw = split_raw(url) if url else None
    if raw is None:
        return None
    host = unquote(raw.host)
    if raw.hostport.startswith("[") and host and ":" in host:
        return host
    return host if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", host or "") else None


def hosts_to_resolve(container: Container, names: list[str] | None = None) -> list[tuple[str, str]]:
    """(role, host): the names given, else the database and Redis hosts of the container's own URLs."""
    if names:
        return [("host", n) for n in dict.fromkeys(names)]
    env = container.env
    db = intended_host(env.get("DATABASE_URL")) or DEFAULT_DB_HOST
    redis = intended_host(env.get("REDIS_URL") or env.get("CELERY_BROKER_URL")) or DEFAULT_REDIS_HOST
    pairs = [("database", db), ("redis", redis)]
    return [p for i, p in enumerate(pairs) if p[1] not in [q[1] for q in pairs[:i]]]


def networks_result(container: Container, required: list[str]) -> Result:
    """Every required network attached; the runbook's worker has two (coolify + Supabase)."""
    attached = sorted(container.networks)
    missing = [n for n in required if n not in container.networks]
    notes = [f"{name}: {(info or {}).get('IPAddress') or 'no IP (container stopped?)'}" for name, info in sorted(container.networks.items())]
    details = {"networks": attached, "required": required, "missing": missing}
    if missing:
        first = missing[0]
        return results.fail(
            "networks",
            f"{container.name} is not on {', '.join(missing)} (it is on: {', '.join(attached) or 'none'})",
            hint=f"docker network connect {first} {container.name}; docker restart {container.name} (runbook: Networks (CRITICAL))",
            notes=notes,
            details=details,
        )
    if len(attached) < 2:
        return results.warn(
            "networks",
            f"{container.name} is only on {', '.join(attached) or 'no network'}: the worker needs coolify AND the Supabase network",
            hint=f"docker network connect <supabase-network, e.g. {SUPABASE_NETWORK_EXAMPLE}> {container.name}; docker restart {container.name}",
            notes=notes,
            details=details,
        )
    return results.ok("networks", f"on {', '.join(attached)}", notes=notes, details=details)


def _resolve(container: str, name: str, timeout: float) -> tuple[bool | None, str]:
    """(resolved?, address) via getent, else python3; ``None`` when neither tool exists."""
    output = exec_in(container, ["getent", "hosts", name], timeout=timeout)
    if executable_missing(output):
        output = exec_in(container, ["python3", "-c", _PY_RESOLVE, name], timeout=timeout)
        if executable_missing(output):
            return None, ""
    if output.ok and output.stdout.strip():
        return True, output.stdout.split()[0]
    return False, ""


def _dns_hint(role: str, name: str, container: str) -> str:
    network = "coolify" if role == "redis" else f"<supabase-network, e.g. {SUPABASE_NETWORK_EXAMPLE}>"
    return (
        f"docker network connect {network} {container}; docker restart {container} (runbook: Networks (CRITICAL)); "
        "right after a deploy, wait 30-60 s and re-check (DNS flapping)"
    )


def dns_result(container: str, role: str, name: str, timeout: float) -> Result:
    """``docker exec CONTAINER getent hosts NAME``: exit 2 means the name does not resolve there."""
    label = f"dns {name}"
    try:
        ipaddress.ip_address(name)
        return results.skip(label, f"{name} is an IP address: nothing to resolve")
    except ValueError:
        pass
    try:
        resolved, address = _resolve(container, name, timeout)
    except DockerTimeout:
        # a name no Docker network knows goes to the host's resolvers and waits for their timeout (10-20 s):
        # that is the answer, unless the daemon itself has stopped answering
        if not daemon_answers(min(timeout, 3.0)):
            raise
        return results.fail(
            label,
            f"{name} ({role}) does not resolve within {timeout:g} s inside {container} (the Docker daemon answers)",
            hint=_dns_hint(role, name, container)
            + "; a name no attached network knows is asked of the host's resolvers, which take their full timeout",
            details={"timeout_s": timeout},
        )
    if resolved is None:
        return results.skip(label, f"cannot test DNS: neither getent nor python3 exists in {container}")
    if resolved:
        return results.ok(label, f"{name} ({role}) resolves to {address} inside {container}", details={"address": address})
    return results.fail(label, f"{name} ({role}) does not resolve inside {container}", hint=_dns_hint(role, name, container))


def check_networks(
    container: str = "pms-worker-v2",
    required: list[str] | None = None,
    resolve: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    with_state: bool = True,
) -> list[Result]:
    """``pmsops host networks``: required networks attached, and the DB and Redis names resolvable inside."""
    inspected = inspect_container(container, timeout)
    out = [state_result(inspected)] if with_state else []
    out.append(networks_result(inspected, list(required or DEFAULT_REQUIRED)))
    for role, name in hosts_to_resolve(inspected, resolve):
        out += run_check(f"dns {name}", lambda role=role, name=name: dns_result(require_running(inspected).name, role, name, timeout))
    return out
