"""API verdicts behind a real reverse proxy (#25): nginx from Debian in front of the real reference API, TLS on
loopback with a private CA, so that the http:// downgrade is a real one (the variants of ``pmsops sandbox up
--proxy``). Traefik's and GoTrue's own answers, which do not install here, are in tests/test_api_backends.py.

The matrix: variant × command (token, check health, connections list, sync trigger, sync logs, smoke) × output
(text, --json, --junit). Each cell reaches the verdict its variant deserves and names the cause. make test runs
the text column; make test-full the --json and --junit columns too.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

from pmsops.sandbox import processes
from pmsops.sandbox.proxy import nginx_argv, prepare

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="make setup installs nginx-light")

COMMANDS = {
    "token": ["token"],
    "check health": ["check", "health"],
    "connections list": ["connections", "list"],
    "sync trigger": ["sync", "trigger", "{cid}", "--type", "availability"],
    "sync logs": ["sync", "logs", "{cid}"],
    "smoke": ["smoke", "--sync-type", "availability", "--wait", "60"],
}


@dataclass(frozen=True)
class Expect:
    code: int
    said: str = ""
    """Text the output must hold (the cause named), empty when the command simply passes."""


DOWNGRADE_SAFE = {command: Expect(0) for command in COMMANDS}
HTTP_301 = {
    "token": Expect(0),  # GoTrue (SB_URL) is not behind this proxy
    "check health": Expect(1, "HTTP 301 redirect to https://127.0.0.1:"),
    "connections list": Expect(0, "PMS_API_URL says http:// and the API redirected to https://"),
    "sync trigger": Expect(1, "a client repeats a POST there as a GET, which the API refuses (HTTP 405)"),
    "sync logs": Expect(0),
    "smoke": Expect(1, "HTTP 301 redirect to https://127.0.0.1:"),
}
NO_BACKEND = {
    "token": Expect(0),
    "check health": Expect(1, "HTTP 502"),
    "connections list": Expect(1, "the reverse proxy answered HTTP 502 itself"),
    "sync trigger": Expect(1, "the reverse proxy answered HTTP 502 itself"),
    "sync logs": Expect(1, "the reverse proxy answered HTTP 502 itself"),
    "smoke": Expect(1, "HTTP 502"),
}
VARIANTS = {"nginx": DOWNGRADE_SAFE, "nginx-untrusted": DOWNGRADE_SAFE, "nginx-http": HTTP_301, "nginx-no-backend": NO_BACKEND}


class Nginx:
    """nginx as ``pmsops sandbox up --proxy`` starts it, in front of ``upstream_port``."""

    def __init__(self, directory, variant: str, upstream_port: int) -> None:
        self.plan = prepare(directory, variant, upstream_port)
        with open(directory / "nginx.out", "ab") as log:
            self.proc = processes.spawn(nginx_argv(self.plan), cwd=directory, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdout=log.fileno())
        processes.wait_for_http(self.plan.http_port, 30, "nginx", exited=lambda: self.proc.poll() is not None)

    def close(self) -> None:
        processes.stop(self.proc)


@pytest.fixture(scope="module")
def proxies(sandbox, tmp_path_factory, refused_port):
    api_port = int(sandbox.env()["PMS_API_URL"].rsplit(":", 1)[1])
    started = {}
    try:
        for variant in VARIANTS:
            base = "nginx" if variant == "nginx-no-backend" else variant
            upstream = refused_port if variant == "nginx-no-backend" else api_port
            started[variant] = Nginx(tmp_path_factory.mktemp(variant) / "nginx", base, upstream)
        yield started
    finally:
        for proxy in started.values():
            proxy.close()


def _cells(outputs):
    for variant in VARIANTS:
        for command in COMMANDS:
            for output in outputs:
                marks = () if output == "text" else pytest.mark.slow
                yield pytest.param(variant, command, output, id=f"{variant}-{command.replace(' ', '-')}-{output}", marks=marks)


@pytest.mark.parametrize("variant, command, output", list(_cells(("text", "json", "junit"))))
def test_every_api_command_behind_a_real_proxy_reaches_the_variants_verdict(cli, sandbox, proxies, tmp_path, variant, command, output):
    plan = proxies[variant].plan
    cid = next(c["id"] for c in sandbox.load().seed["connections"] if c["agency"] == "a")
    env = {**sandbox.env(), "PMS_API_URL": plan.api_url, "SSL_CERT_FILE": str(plan.ca_file), "CID": cid}
    junit = tmp_path / "report.xml"
    extra = {"text": [], "json": ["--json"], "junit": ["--junit", str(junit)]}[output]
    if output == "junit" and command in ("token", "connections list"):
        pytest.skip(f"{command} has no --junit")
    result = cli(*[a.format(cid=cid) for a in COMMANDS[command]], *extra, env=env)
    expect = VARIANTS[variant][command]
    assert "Traceback" not in result.output
    assert result.exit_code == expect.code, result.output
    assert expect.said in result.output, result.output
    if output == "json":
        assert json.loads(result.stdout)["status"] == ("fail" if expect.code else "ok")
    if output == "junit":
        root = ET.parse(junit).getroot()
        failures = int(root.get("failures", 0)) + int(root.get("errors", 0)) + sum(int(s.get("failures", 0)) for s in root.iter("testsuite"))
        assert (failures > 0) == bool(expect.code)
        assert expect.said in ET.tostring(root, encoding="unicode")


def test_the_unslashed_path_behind_a_proxy_uvicorn_does_not_trust_is_a_named_scheme_downgrade(proxies, monkeypatch):
    """The runbook's case, with the real pieces: FastAPI's 307 says http:// behind TLS. The client names it (and the fix)
    instead of following it and losing the token (the old code: HTTP 401 blamed on the token or the JWT secret)."""
    from pmsops.api.client import ApiClient
    from pmsops.api.errors import ApiError

    plan = proxies["nginx-untrusted"].plan
    monkeypatch.setenv("SSL_CERT_FILE", str(plan.ca_file))
    with ApiClient(plan.api_url, "x.y.z", 5) as client, pytest.raises(ApiError) as caught:
        client.request("GET", "/api/v1/channel-connections")
    assert "HTTP 307 redirect to http://127.0.0.1:" in caught.value.message
    assert "https:// downgraded to http://" in caught.value.message
    assert "--proxy-headers --forwarded-allow-ips" in caught.value.hint
