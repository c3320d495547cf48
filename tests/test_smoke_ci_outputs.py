"""``smoke`` as a CI gate, read by the consumers CI uses, in every stack state.

Three states of the reference stack (healthy, worker stopped, API stopped). Every
JUnit file is parsed by a strict XML parser, by ``junitparser`` and validated
against the Jenkins xunit plugin's JUnit schema (tests/schemas/junit-10.xsd, from
the pytest sdist); every ``--json`` output is parsed with ``json.loads`` and gated
with ``jq -e '.status=="ok"'`` (jq 1.6 exits 0 on empty input: an empty stdout
would pass the gate).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

SCHEMA = Path(__file__).parent / "schemas" / "junit-10.xsd"
STEPS = ["1 load environment", "2 token", "3 health", "4 channel connection", "5 trigger sync", "6 sync logs"]


@dataclass
class Run:
    state: str
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    wall_ms: float
    junit: Path | None = None


def _run(cli, state: str, *args: str, junit: Path | None = None, env: dict[str, str] | None = None) -> Run:
    started = time.perf_counter()
    result = cli(*args, *(("--junit", str(junit)) if junit else ()), env=env)
    return Run(state, args, result.exit_code, result.stdout, (time.perf_counter() - started) * 1000, junit)


@pytest.fixture(scope="module")
def runs(cli_module, sandbox, tmp_path_factory):
    """Every CI-facing output once per stack state (the worker and the API are restarted afterwards)."""
    out = tmp_path_factory.mktemp("ci")
    env_file = str(sandbox.env_path)
    odd = out / "env\x01\x1b[31mred\x1b[0m.sh"  # a control character and an ANSI escape in a path that the report shows
    shutil.copy(env_file, odd)
    collected: list[Run] = []

    def each_state(state: str) -> None:
        smoke = ("--env-file", env_file, "smoke", "--wait", "3")
        collected.append(_run(cli_module, state, *smoke, "--json", junit=out / f"{state}.xml"))
        collected.append(_run(cli_module, state, *smoke, "--json", "--strict", "--suite-name", "prod", junit=out / f"{state}-strict.xml"))
        collected.append(_run(cli_module, state, "--env-file", env_file, "connections", "list", "--json", "--timeout", "2"))
        collected.append(_run(cli_module, state, "--env-file", env_file, "sync", "logs", str(uuid.uuid4()), "--json", "--timeout", "2"))
        collected.append(_run(cli_module, state, "--env-file", env_file, "sync", "logs", "not-a-uuid", "--json"))
        collected.append(_run(cli_module, state, "--env-file", env_file, "connections", "list", "--json", "--limit", "0"))

    each_state("healthy")
    collected.append(_run(cli_module, "healthy", "smoke", "--env-file", str(odd), "--json", "--wait", "30", junit=out / "odd.xml"))
    collected.append(
        _run(
            cli_module,
            "healthy",
            "--env-file",
            env_file,
            "smoke",
            "--json",
            "--wait",
            "30",
            junit=out / "staging.xml",
            env={"PMSOPS_CONTEXT": "staging"},
        )
    )
    sandbox.stop("worker")
    try:
        each_state("worker-stopped")
    finally:
        sandbox.start("worker")
    sandbox.stop("api")
    try:
        each_state("api-stopped")
    finally:
        sandbox.start("api")
    return collected


@pytest.fixture(scope="module")
def cli_module():
    from conftest import invoke

    return invoke


def _junit_runs(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.junit is not None]


def test_every_junit_file_passes_a_strict_parser_junitparser_and_the_jenkins_schema_in_every_state(runs):
    import junitparser
    import xmlschema

    schema = xmlschema.XMLSchema(str(SCHEMA))
    files = _junit_runs(runs)
    assert {r.state for r in files} == {"healthy", "worker-stopped", "api-stopped"}
    for run in files:
        raw = run.junit.read_bytes()
        root = ET.fromstring(raw)  # strict: raises on any illegal character
        schema.validate(str(run.junit))
        parsed = junitparser.JUnitXml.fromfile(str(run.junit))
        suites = [parsed] if isinstance(parsed, junitparser.TestSuite) else list(parsed)
        cases = [case for suite in suites for case in suite]
        assert [c.name for c in cases] == STEPS, run.state
        assert suites[0].tests == 6 and suites[0].hostname and suites[0].timestamp
        assert sum(bool(c.result) and isinstance(c.result[0], junitparser.Failure) for c in cases) == suites[0].failures
        assert int(root.get("tests")) == 6


def test_control_characters_and_ansi_escapes_in_a_step_text_leave_the_junit_file_well_formed(runs):
    odd = next(r for r in runs if r.junit and r.junit.name == "odd.xml")
    raw = odd.junit.read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\x01" not in raw
    ET.fromstring(raw.encode())
    assert "env\\x01red.sh" in raw  # the control character stays visible, the colour codes are gone
    assert odd.exit_code == 0


def test_testsuite_carries_timestamp_hostname_and_elapsed_time(runs):
    for run in _junit_runs(runs):
        suite = ET.parse(run.junit).getroot()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp")), run.junit
        assert suite.get("hostname")
        assert 0 < float(suite.get("time")) * 1000 <= run.wall_ms


def test_two_smoke_runs_in_one_job_get_distinct_suite_names_and_classnames(runs):
    by_name = {r.junit.name: ET.parse(r.junit).getroot() for r in _junit_runs(runs) if r.state == "healthy"}
    default, staging, prod = by_name["healthy.xml"], by_name["staging.xml"], by_name["healthy-strict.xml"]
    assert default.get("name") == "pmsops smoke (127.0.0.1)" and default.find("testcase").get("classname") == "pmsops.smoke.127_0_0_1"
    assert staging.get("name") == "pmsops smoke (staging)" and staging.find("testcase").get("classname") == "pmsops.smoke.staging"
    assert prod.get("name") == "pmsops smoke (prod)" and prod.find("testcase").get("classname") == "pmsops.smoke.prod"


def test_the_stopped_worker_fails_health_in_junit_and_nothing_is_triggered(runs):
    plain = next(r for r in runs if r.state == "worker-stopped" and r.junit and "strict" not in r.junit.name)
    health = next(c for c in ET.parse(plain.junit).getroot() if c.get("name") == "3 health")
    assert "celery down" in health.find("failure").get("message")
    trigger = next(c for c in ET.parse(plain.junit).getroot() if c.get("name") == "5 trigger sync")
    assert trigger.find("skipped").get("message").startswith("not triggered: step 3 says celery down")
    assert ET.parse(plain.junit).getroot().get("failures") == "1"


def test_a_warning_step_is_visible_as_skipped_and_is_a_failure_with_strict():
    from pmsops import results
    from pmsops.procedures.smoke import SmokeRun, junit_xml

    run = SmokeRun(
        results=[results.ok("env", "loaded", label="1 load environment"), results.warn("health", "HTTP 200, status degraded", label="3 health")]
    )
    plain, strict = ET.fromstring(junit_xml(run, "prod")), ET.fromstring(junit_xml(run, "prod", strict=True))
    marker = next(c for c in plain if c.get("name") == "3 health").find("skipped")
    assert marker.get("type") == "warning" and marker.get("message") == "warning: HTTP 200, status degraded"
    assert next(c for c in strict if c.get("name") == "3 health").find("failure").get("type") == "warning"
    assert strict.get("failures") == "1" and plain.get("failures") == "0"


def test_every_json_output_is_exactly_one_report_and_the_jq_gate_passes_only_when_ok(runs):
    jq = shutil.which("jq")
    assert jq, "jq is installed by scripts/bootstrap.sh"
    for run in runs:
        report = json.loads(run.stdout)  # exactly one object: a second one would make this raise
        assert report["exit_code"] == run.exit_code, (run.state, run.args)
        gate = subprocess.run([jq, "-e", '.status=="ok"'], input=run.stdout.encode(), capture_output=True, timeout=10)
        assert (gate.returncode == 0) == (run.exit_code == 0 and report["status"] == "ok"), (run.state, run.args, report["status"])
        if run.exit_code != 0 and not report["results"]:
            assert report["error"]["message"] and report["error"]["type"] in ("usage", "dependency", "operation"), (run.state, run.args)


def test_errors_that_exit_1_or_2_still_write_a_report(runs):
    api_down = [
        r
        for r in runs
        if r.state == "api-stopped"
        and r.args[2:4] in (("connections", "list"), ("sync", "logs"))
        and "not-a-uuid" not in r.args
        and "0" not in r.args
    ]
    assert api_down and all(r.exit_code == 1 and json.loads(r.stdout)["status"] == "fail" for r in api_down)
    unknown = next(r for r in runs if r.state == "healthy" and r.args[2:4] == ("sync", "logs") and "not-a-uuid" not in r.args)
    assert unknown.exit_code == 1 and "404" in json.loads(unknown.stdout)["error"]["message"]
    bad = [r for r in runs if "not-a-uuid" in r.args or "--limit" in r.args]
    assert bad and all(r.exit_code == 2 and json.loads(r.stdout)["error"]["type"] == "usage" for r in bad)


def test_duration_is_the_elapsed_wall_time_and_never_null_for_an_executed_step(runs):
    for run in runs:
        report = json.loads(run.stdout)
        assert report["duration_ms"] is not None and 0 < report["duration_ms"] <= run.wall_ms
        executed = [r for r in report["results"] if r["status"] != "skip"]
        assert all(r["duration_ms"] is not None for r in executed), (run.state, run.args)
        if run.args[2:3] == ("smoke",) or "smoke" in run.args[:3]:
            assert report["duration_ms"] >= max(r["duration_ms"] for r in executed)


def test_junit_stays_well_formed_and_schema_valid_whatever_a_step_says():
    """Property: any text in any step (control characters, ANSI, surrogates, markup) gives a valid report."""
    import xmlschema
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pmsops import results
    from pmsops.procedures.smoke import SmokeRun, junit_xml

    schema = xmlschema.XMLSchema(str(SCHEMA))
    makers = [results.ok, results.warn, results.fail, results.skip]

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.tuples(st.sampled_from(range(4)), st.text(), st.text(), st.lists(st.text(), max_size=2)), min_size=1, max_size=6),
        st.text(min_size=1),
        st.booleans(),
    )
    def check(steps, context, strict):
        run = SmokeRun(results=[makers[k](name, summary, notes=notes, hint=summary or None, duration_ms=1.0) for k, name, summary, notes in steps])
        text = junit_xml(run, context, strict, hostname="ci-host")
        root = ET.fromstring(text.encode("utf-8"))
        schema.validate(root)
        assert len(root.findall("testcase")) == len(steps)

    check()
