"""A real reverse proxy in front of the sandbox API: nginx terminating TLS on loopback with a self-signed CA.

What operators meet in production, rehearsed with the real piece (#25): the proxy Coolify puts in front of the API
terminates TLS; uvicorn trusts ``X-Forwarded-Proto`` only from 127.0.0.1 unless started with ``--proxy-headers
--forwarded-allow-ips``; a plain-http listener redirects to https with 301; while the API is down the proxy answers
its own 502 page. Variants (``pmsops sandbox up --proxy VARIANT``):

``nginx``            TLS, forwarded headers from 127.0.0.1: trusted, FastAPI's redirects keep https://.
``nginx-untrusted``  TLS, the proxy connects from 127.0.0.2: uvicorn does not trust it, so FastAPI's trailing-slash
                     307 says http:// (a real scheme downgrade, as behind Traefik on another address).
``nginx-http``       PMS_API_URL is the proxy's http:// listener, which answers 301 to https:// (a POST becomes a GET).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pmsops import safefile
from pmsops.errors import UsageError

VARIANTS = ("nginx", "nginx-untrusted", "nginx-http")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise UsageError(f"unknown proxy variant {variant!r}", hint=f"one of: {', '.join(VARIANTS)}")
    if shutil.which("nginx") is None:
        raise UsageError("--proxy needs nginx, which is not installed", hint="apt-get install nginx-light (make setup installs it)")
    return variant


@dataclass(frozen=True)
class ProxyPlan:
    """Where the proxy listens and what the env file's PMS_API_URL becomes."""

    variant: str
    tls_port: int
    http_port: int
    upstream_port: int
    directory: Path

    @property
    def api_url(self) -> str:
        if self.variant == "nginx-http":
            return f"http://127.0.0.1:{self.http_port}"
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def config(self) -> str:
        """nginx.conf: runs in the foreground, logs to its directory, no file outside it."""
        d = self.directory
        user = "user root;\n" if os.geteuid() == 0 else ""
        bind = "        proxy_bind 127.0.0.2;\n" if self.variant == "nginx-untrusted" else ""
        temp = "".join(f"    {kind}_temp_path {d / (kind + '-temp')};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (
            f"{user}worker_processes 1;\npid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} warn;\ndaemon off;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {d / 'access.log'};\n{temp}"
            f"    upstream api {{ server 127.0.0.1:{self.upstream_port}; }}\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.tls_port} ssl;\n"
            f"        ssl_certificate {d / 'server.pem'};\n        ssl_certificate_key {d / 'server.key'};\n"
            "        location / {\n"
            "            proxy_pass http://api;\n"
            "            proxy_set_header Host $http_host;\n"
            "            proxy_set_header X-Forwarded-Proto $scheme;\n"
            "            proxy_set_header X-Forwarded-For $remote_addr;\n"
            f"    {bind}"
            "            proxy_read_timeout 60s;\n"
            "        }\n"
            "    }\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.http_port};\n"
            f"        return 301 https://127.0.0.1:{self.tls_port}$request_uri;\n"
            "    }\n"
            "}\n"
        )


def prepare(directory: Path, variant: str, upstream_port: int) -> ProxyPlan:
    """The certificates and nginx.conf in ``directory`` (0700, ours); nginx itself is started by the caller."""
    from pmsops.sandbox.servers import free_port

    from pmsops.sandbox.tls import make_certificates

    safefile.private_directory(directory)
    make_certificates(directory)
    plan = ProxyPlan(variant, free_port(), free_port(), upstream_port, directory)
    safefile.write_text(directory / "nginx.conf", plan.config(), "nginx.conf")
    return plan


def nginx_argv(plan: ProxyPlan) -> list[str]:
    """nginx in the foreground, every path its own (``-e``: not even the start-up error log goes to /var/log)."""
    d = plan.directory
    return [shutil.which("nginx") or "nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
