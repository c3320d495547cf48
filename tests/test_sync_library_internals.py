"""Library internals the sync engine relies on live in one module, pinned, and fail here when they change (#27).

``pmsops.sync.broker`` subclasses kombu's Redis transport (pyproject pins kombu to 5.7.x): these tests name every
private attribute it uses, so a kombu release that renames one fails the suite (``make test-latest`` runs it on
the newest kombu the range allows) instead of the worker in production. Nothing else in ``pmsops.sync`` may reach
into kombu or Celery's worker state: who holds an operation is the sync log's to say."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import kombu
from kombu.transport import redis as kombu_redis

SYNC = Path(__file__).resolve().parent.parent / "src" / "pmsops" / "sync"
INTERNALS_HOME = "broker.py"
KOMBU_KEY_READ = re.compile(r'\.(hlen|hget|hgetall|hkeys|hscan|zrange|zrangebyscore|zcard|zscan)\(\s*"unacked|"unacked_index"')
FORBIDDEN_MODULES = ("kombu", "celery.worker.state", "celery.worker.request")


def test_kombu_is_the_minor_version_the_transport_was_written_for():
    assert kombu.__version__.split(".")[:2] == ["5", "7"]


def test_every_private_kombu_attribute_the_transport_uses_still_exists():
    assert "asynchronous" in inspect.signature(kombu_redis.Channel._connparams).parameters
    assert callable(kombu_redis.QoS.restore_unacked) and callable(kombu_redis.QoS.restore_by_tag)
    assert "_delivered" in inspect.getsource(kombu_redis.QoS)  # the delivered-tags mapping QoS.restore_unacked reads
    assert "ack_emulation" in inspect.getsource(kombu_redis.Channel)
    assert "self.connection.client" in inspect.getsource(kombu_redis.Channel._connparams)  # the read that crashed after detaching


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_sync_module_but_the_transport_reads_kombu_or_celery_worker_state():
    readers = {
        path.name: sorted(name for name in _imports(path) if name.startswith(FORBIDDEN_MODULES))
        for path in sorted(SYNC.rglob("*.py"))
        if path.name != INTERNALS_HOME
    }

    assert {name: modules for name, modules in readers.items() if modules} == {}


def test_no_sync_module_reads_the_brokers_unacked_keys():
    readers = [
        path.name
        for path in sorted(SYNC.rglob("*.py"))
        if path.name != INTERNALS_HOME and "unacked" in path.read_text(encoding="utf-8").replace('"unacked_restore_', "")
    ]  # the documented transport options (unacked_restore_interval, _throttle) are settings, not reads

    assert readers == []


def test_the_unacked_key_names_named_in_the_transport_module_are_kombus():
    from pmsops.sync.broker import UNACKED_INDEX_KEY, UNACKED_KEY

    assert (kombu_redis.Channel.unacked_key, kombu_redis.Channel.unacked_index_key) == (UNACKED_KEY, UNACKED_INDEX_KEY)


def test_no_module_outside_the_transport_names_kombus_unacked_keys():
    """The snapshot counts them for the screen through pmsops.sync.broker's names; the ACL check lists the keys Celery
    needs (a fact about Celery, not a read of its state)."""
    src = SYNC.parent
    allowed = {"sync/broker.py", "checks/redis.py"}
    readers = sorted(
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if str(path.relative_to(src)) not in allowed and KOMBU_KEY_READ.search(path.read_text(encoding="utf-8"))
    )
    assert readers == []
