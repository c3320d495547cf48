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

import datetime
import ipaddress
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


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 and localhost, written 0600 into ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pmsops sandbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    safefile.write_text(paths[0], ca.public_bytes(pem).decode(), "proxy CA")
    safefile.write_text(paths[1], server.public_bytes(pem).decode(), "proxy certificate")
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    safefile.write_text(paths[2], key_pem, "proxy key")
    return paths


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

    safefile.private_directory(directory)
    make_tls(directory)
    plan = ProxyPlan(variant, free_port(), free_port(), upstream_port, directory)
    safefile.write_text(directory / "nginx.conf", plan.config(), "nginx.conf")
    return plan


def nginx_argv(plan: ProxyPlan) -> list[str]:
    """nginx in the foreground, every path its own (``-e``: not even the start-up error log goes to /var/log)."""
    d = plan.directory
    return [shutil.which("nginx") or "nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
