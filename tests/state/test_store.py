"""The state stores, SQLite and PostgreSQL, behave the same."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from turnout.config import validate_config
from turnout.errors import TurnoutError
from turnout.state import AuditEntry, StateStore, Window, open_store, state_url


def test_a_record_is_versioned_and_survives_reopening(store: StateStore, store_url: str) -> None:
    assert store.get("rollout", "coordinator/canary") is None
    assert store.put("rollout", "coordinator/canary", {"step": 0, "state": "running"}, at=100.0)
    assert store.put("rollout", "coordinator/canary", {"step": 1, "state": "running"}, at=160.0)
    reopened = open_store(store_url)
    try:
        record = reopened.get("rollout", "coordinator/canary")
        assert record is not None
        assert (record.value, record.version, record.updated_at) == (
            {"step": 1, "state": "running"},
            2,
            160.0,
        )
        assert set(reopened.items("rollout")) == {"coordinator/canary"}
        assert reopened.items("overlay") == {}
    finally:
        reopened.close()


def test_a_write_expecting_an_old_version_is_refused(store: StateStore) -> None:
    assert store.put("rollout", "f/r", {"step": 0}, at=1.0, expect=0)
    assert not store.put("rollout", "f/r", {"step": 5}, at=2.0, expect=0)  # already exists
    assert store.put("rollout", "f/r", {"step": 1}, at=3.0, expect=1)
    assert not store.put("rollout", "f/r", {"step": 9}, at=4.0, expect=1)  # someone wrote version 2
    record = store.get("rollout", "f/r")
    assert record is not None
    assert (record.value, record.version) == ({"step": 1}, 2)


def test_the_audit_log_keeps_who_when_why_before_and_after(store: StateStore) -> None:
    for i, action in enumerate(["pause", "resume", "abort"]):
        store.audit(
            AuditEntry(
                at=10.0 + i,
                namespace="rollout",
                key="coordinator/canary",
                actor="ana@host",
                action=action,
                reason=f"because {i}",
                before={"state": "running"},
                after={"state": action},
                details={"i": i},
            )
        )
    store.audit(AuditEntry(at=20.0, namespace="rollout", key="other/rule", actor="a", action="x", reason=""))
    entries = store.history("rollout", "coordinator/canary")
    assert [e.action for e in entries] == ["pause", "resume", "abort"]
    assert entries[0] == AuditEntry(
        10.0,
        "rollout",
        "coordinator/canary",
        "ana@host",
        "pause",
        "because 0",
        {"state": "running"},
        {"state": "pause"},
        {"i": 0},
    )
    assert [e.action for e in store.history("rollout", "coordinator/canary", limit=2)] == ["resume", "abort"]
    assert len(store.history("rollout")) == 4
    assert store.history("rollout", "other/rule")[0].before is None


def test_windows_of_every_replica_are_read_back_and_pruned(store: StateStore) -> None:
    for replica in ("a:1", "b:2"):
        for end in (30.0, 60.0, 90.0):
            store.add_window(Window("exp", replica, end - 30, end, {"n": end, "replica": replica}))
    store.add_window(Window("exp", "a:1", 60.0, 90.0, {"n": 91.0, "replica": "a:1"}))  # written again
    store.add_window(Window("other", "a:1", 60.0, 90.0, {"n": 1}))
    recent = store.windows("exp", since=60.0)
    assert [(w.replica, w.end, w.data["n"]) for w in recent] == [("a:1", 90.0, 91.0), ("b:2", 90.0, 90.0)]
    assert store.prune_windows(before=60.0) == 2
    assert len(store.windows("exp", since=0.0)) == 4


def test_one_leader_at_a_time_and_a_released_lock_is_taken_over(store: StateStore, store_url: str) -> None:
    other = open_store(store_url)
    try:
        mine, theirs = store.leader_lock("rollouts"), other.leader_lock("rollouts")
        assert mine.acquire()
        assert mine.acquire()  # kept
        assert not theirs.acquire()
        mine.release()
        assert theirs.acquire()
        assert not mine.acquire()
        theirs.release()
    finally:
        other.close()


def test_a_dead_holder_s_lock_is_taken_over(store: StateStore, store_url: str) -> None:
    # A process takes the lock and is killed without releasing it.
    script = textwrap.dedent(
        f"""
        import os, sys
        from turnout.state import open_store
        lock = open_store({store_url!r}).leader_lock("rollouts")
        assert lock.acquire()
        print("held", flush=True)
        sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lock = store.leader_lock("rollouts")
        assert not lock.acquire()
        holder.kill()
        holder.wait(timeout=30)
        taken = False
        for _ in range(200):  # PostgreSQL ends the closed session's backend within moments
            if taken := lock.acquire():
                break
            time.sleep(0.05)
        assert taken
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()


def test_the_default_store_sits_next_to_the_sqlite_events_database() -> None:
    config = validate_config({"events": {"sink": "sqlite:///data/events/turnout_events.db"}})
    assert state_url(config) == "sqlite:///data/events/turnout_state.db"
    assert (
        state_url(validate_config({"events": {"sink": "postgresql://db/x"}})) == "sqlite:///turnout_state.db"
    )
    explicit = validate_config({"state": {"url": "postgresql://db/state"}})
    assert state_url(explicit) == "postgresql://db/state"


def test_an_unknown_store_url_is_one_clear_error() -> None:
    with pytest.raises(TurnoutError, match=r"state store URL 'redis://x'"):
        open_store("redis://x")
