"""Contexts: several deployments by name, as kubectl/docker/gh have them (pmsops context …, --context)."""

from __future__ import annotations

import json
import os
import stat

import pytest


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("PMSOPS_CONTEXT", raising=False)
    monkeypatch.delenv("PMSOPS_ENV_FILE", raising=False)
    return home


@pytest.fixture
def two_deployments(tmp_path, redis_server, refused_port):
    """prod: a Redis that answers; staging: one that refuses."""
    prod, staging = tmp_path / "prod.sh", tmp_path / "staging.sh"
    prod.write_text(f"export REDIS_URL='{redis_server.url}'\n")
    staging.write_text(f"export REDIS_URL='redis://:pw@127.0.0.1:{refused_port}/0'\n")
    return prod, staging


def test_context_add_use_list_remove(cli, config_home, two_deployments):
    prod, staging = two_deployments

    assert cli("context", "add", "prod", "--env-file", str(prod)).exit_code == 0
    assert cli("context", "add", "staging", "--env-file", str(staging)).exit_code == 0
    listed = json.loads(cli("context", "list", "--json").stdout)
    assert listed["current"] == "prod"  # the first one added is active
    assert [(c["name"], c["env_file"]) for c in listed["contexts"]] == [("prod", str(prod)), ("staging", str(staging))]

    assert cli("context", "use", "staging").exit_code == 0
    text = cli("context", "list").stdout.splitlines()
    assert text[0].split() == ["NAME", "ENV", "FILE"]
    assert text[2].startswith("* staging")

    assert cli("context", "remove", "staging").exit_code == 0
    assert json.loads(cli("context", "list", "--json").stdout) == {
        "schema": "pmsops.contexts/v1",
        "current": None,
        "contexts": [{"name": "prod", "env_file": str(prod), "current": False}],
    }


def test_the_store_is_private_and_holds_paths_not_values(cli, config_home, two_deployments, redis_server):
    prod, _ = two_deployments
    cli("context", "add", "prod", "--env-file", str(prod))

    directory, store = config_home / "pmsops", config_home / "pmsops" / "contexts.json"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    assert redis_server.url not in store.read_text() and str(prod) in store.read_text()


def test_the_active_context_is_used_and_named_in_the_report_header(cli, config_home, two_deployments):
    prod, staging = two_deployments
    cli("context", "add", "prod", "--env-file", str(prod))
    cli("context", "add", "staging", "--env-file", str(staging), "--use")

    active = cli("check", "redis")
    one_run = cli("check", "redis", "--context", "prod", "--json")

    assert active.exit_code == 1  # staging's Redis refuses
    assert active.stdout.splitlines()[0] == "context: staging"
    assert one_run.exit_code == 0
    assert json.loads(one_run.stdout)["context_name"] == "prod"


def test_an_unknown_context_is_bad_input_naming_the_known_ones(cli, config_home, two_deployments):
    prod, _ = two_deployments
    cli("context", "add", "prod", "--env-file", str(prod))

    result = cli("--context", "prdo", "doctor")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["✗ error: --context prdo: no such context", "  → known contexts: prod"]


def test_a_context_needs_a_readable_env_file(cli, config_home, tmp_path):
    result = cli("context", "add", "prod", "--env-file", str(tmp_path / "missing.sh"))

    assert result.exit_code == 2 and "env file not found" in result.stderr
    assert not (config_home / "pmsops" / "contexts.json").exists()


def test_report_names_its_bundle_after_the_active_context(config_home, two_deployments):
    from pmsops import contexts
    from pmsops.observe.report import context_name

    prod, _ = two_deployments
    contexts.add("prod", str(prod), os.environ)
    chosen = contexts.select(None, None, os.environ)  # what the CLI's entry point resolves, then hands to the report

    assert (chosen.context, context_name(chosen.context), context_name("explicit"), context_name()) == ("prod", "prod", "explicit", "default")


def test_a_pmsops_context_that_names_no_stored_context_never_runs_against_the_one_chosen_with_use(cli, config_home, two_deployments, monkeypatch):
    """A typo of prod must not run against staging (#24 item 7): exit 2 naming the known contexts."""
    prod, staging = two_deployments
    cli("context", "add", "prod", "--env-file", str(prod))
    cli("context", "add", "staging", "--env-file", str(staging))
    cli("context", "use", "staging")
    monkeypatch.setenv("PMSOPS_CONTEXT", "prdo")

    result = cli("check", "redis")

    assert result.exit_code == 2
    assert "PMSOPS_CONTEXT=prdo names no stored context" in result.stderr and "known contexts: prod, staging" in result.stderr
    assert "127.0.0.1" not in result.stdout  # staging's Redis was never asked


def test_pmsops_context_stays_a_ci_label_where_no_context_is_stored(cli, config_home, redis_server, monkeypatch):
    monkeypatch.setenv("PMSOPS_CONTEXT", "ci-run-42")
    monkeypatch.setenv("REDIS_URL", redis_server.url)

    assert cli("check", "redis").exit_code == 0


def _planted_store(config_home, env_file, names=("prod",)) -> "os.PathLike":
    """A contexts.json as another user could leave it where root's XDG_CONFIG_HOME points (sudo -E, su without -)."""
    store = config_home / "pmsops" / "contexts.json"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps({"current": names[0], "contexts": {n: {"env_file": str(env_file)} for n in names}}))
    return store


UNTRUSTED = {
    "owned by another user": lambda store: os.chown(store, 65534, 65534),
    "writable by others": lambda store: os.chmod(store, 0o666),
    "its directory writable by others": lambda store: os.chmod(store.parent, 0o777),
    "a parent writable by others": lambda store: os.chmod(store.parent.parent, 0o777),
    "a link to another user's store": lambda store: (
        os.rename(store, store.parent.parent / "theirs.json"),
        os.chown(store.parent.parent / "theirs.json", 65534, 65534),
        os.symlink(store.parent.parent / "theirs.json", store),
    ),
}


@pytest.mark.skipif(os.geteuid() != 0, reason="planting a store owned by another user needs root (CI runs as root)")
@pytest.mark.parametrize("how", sorted(UNTRUSTED))
def test_a_contexts_store_another_user_could_have_written_is_refused_not_trusted(cli, config_home, two_deployments, how):
    """#23 item 2: the store chooses root's env file (then wait-for-deps -- CMD would run with its PATH): refused in one line."""
    _, attacker_env = two_deployments
    UNTRUSTED[how](_planted_store(config_home, attacker_env))
    for args in (("context", "list"), ("doctor", "--timeout", "1")):
        result = cli(*args)
        assert (result.exit_code, result.stderr.startswith("✗ error: unsafe context store"), "staging" in result.stdout) == (2, True, False), (
            how,
            result.output,
        )


@pytest.mark.parametrize("name", ["../../etc/passwd", "a b", "\x1b[2Jprod", "-rf", "x" * 49])
def test_a_context_name_that_pmsops_would_not_write_is_refused_on_read(cli, config_home, two_deployments, name):
    prod, _ = two_deployments
    _planted_store(config_home, prod, names=(name,))
    result = cli("context", "list")
    assert (result.exit_code, "context name" in result.stderr, "\x1b" in result.output) == (2, True, False), result.output


def test_top_names_the_context_it_watches_in_its_header_and_its_json(cli, config_home, two_deployments):
    """#24 item 7: top's header had no context and top --json said context_name null with --context prod."""
    prod, _ = two_deployments
    cli("context", "add", "prod", "--env-file", str(prod))
    once = cli("--context", "prod", "top", "--once", "--broadcast-timeout", "0.5", env={"COLUMNS": "160"})
    as_json = cli("--context", "prod", "top", "--json", "--broadcast-timeout", "0.5")
    assert once.stdout.splitlines()[0].startswith("pmsops top  context: prod  ")
    assert json.loads(as_json.stdout)["context_name"] == "prod"


def test_an_error_line_and_the_error_json_name_the_context(cli, config_home, two_deployments):
    prod, _ = two_deployments
    cli("context", "add", "prod", "--env-file", str(prod))
    text = cli("--context", "prod", "sync", "logs")
    as_json = cli("--context", "prod", "sync", "logs", "--json")
    assert text.stderr.startswith("✗ error (context prod): no connection id")
    assert (as_json.exit_code, json.loads(as_json.stdout)["context_name"]) == (2, "prod")


def test_context_names_complete_in_the_shell(config_home, two_deployments):
    import os
    import subprocess
    import sys

    prod, staging = two_deployments
    for name, path in (("prod", prod), ("prelive", staging), ("staging", staging)):
        subprocess.run(
            [sys.executable, "-m", "pmsops", "context", "add", name, "--env-file", str(path)], env=dict(os.environ), check=True, capture_output=True
        )

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_PMSOPS_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        return subprocess.run([sys.executable, "-m", "pmsops"], env=env, capture_output=True, text=True, timeout=30).stdout.split()

    assert complete("pmsops --context pr") == ["prelive", "prod"]
    assert complete("pmsops context use st") == ["staging"]
