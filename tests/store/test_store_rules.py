"""The store's operations to the letter: every column a write stores is read back through the
typed records, every guard (status, owner, version, deadline, cutoff) is tried on both sides,
and the primitives under them (retrying, the group commit, SQLite's batches and URL rules) are
checked exactly, messages included.

Times come from a frozen clock (``clock.now_ms``), so every stored time is known; retries run
against a fake ``time`` (no real sleeping, no timed assertions).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine import clock, errors, signals
from engine.store import base, connect, groupcommit, records, sqlite
from engine.store.base import Store
from tests.conftest import Database
from tests.support import wait_until

NOW = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(clock, "now_ms", frozen)
    return frozen


@pytest.fixture
def st(db: Database, now: Clock) -> Iterator[Store]:
    found = connect(db.url, db.schema).ready()
    yield found
    found.close()


def new(workflow_id: str, **fields: Any) -> records.NewWorkflow:
    """A workflow PENDING under exec-1 unless ``fields`` say otherwise."""
    base_fields: dict[str, Any] = {
        "workflow_id": workflow_id,
        "name": "wf",
        "inputs": '"in"',
        "status": "PENDING",
        "application_version": "v1",
        "application_id": "app",
        "executor_id": "exec-1",
        "started_at": NOW,
    }
    return records.NewWorkflow(**{**base_fields, **fields})


def row(
    workflow_id: str, **fields: Any
) -> records.WorkflowRow:  # the row ``new(workflow_id)`` reads back as
    base_fields: dict[str, Any] = {
        "workflow_id": workflow_id,
        "status": "PENDING",
        "name": "wf",
        "inputs": '"in"',
        "output": None,
        "error": None,
        "executor_id": "exec-1",
        "application_version": "v1",
        "created_at": NOW,
        "updated_at": NOW,
        "recovery_attempts": 0,
        "queue_name": None,
        "timeout_ms": None,
        "deadline_ms": None,
        "started_at": NOW,
        "completed_at": None,
        "parent_workflow_id": None,
        "forked_from": None,
    }
    return records.WorkflowRow(**{**base_fields, **fields})


def step(workflow_id: str, step_id: int, **fields: Any) -> records.NewStep:
    base_fields: dict[str, Any] = {
        "workflow_id": workflow_id,
        "step_id": step_id,
        "name": f"s{step_id}",
        "output": f'"out{step_id}"',
        "error": None,
        "started": NOW - 5,
    }
    return records.NewStep(**{**base_fields, **fields})


# -- queries and migrations ----------------------------------------------------------------------


def test_queries_are_read_without_comments_or_the_final_semicolon() -> None:
    for dialect in ("sqlite", "postgres"):
        queries = base.load_queries(dialect)
        assert queries["get_traceparent"] == (
            "SELECT traceparent FROM workflow_status WHERE workflow_uuid = :workflow_id"
            if dialect == "sqlite"
            else queries["get_traceparent"]
        )
        assert all(not q.endswith(";") and not q.startswith("--") for q in queries.values())
    cancel = base.load_queries("sqlite")["cancel_workflow"]
    assert cancel.startswith("UPDATE workflow_status\n") and "Only unfinished" not in cancel
    assert cancel.endswith("RETURNING workflow_uuid")


def test_migrations_are_numbered_in_order() -> None:
    for dialect in ("sqlite", "postgres"):
        found = base.load_migrations(dialect)
        assert [version for version, _, _ in found] == list(range(1, len(found) + 1))
        assert found[0][1] == "0001_initial.sql" and "CREATE TABLE" in found[0][2]
        assert all(name.startswith(f"{version:04d}_") for version, name, _ in found)


def test_a_sqlite_migration_records_each_version_once(tmp_path: Path, now: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    first = connect(url).ready()
    first.migrate()  # again: nothing to apply
    first.close()
    conn = sqlite3.connect(tmp_path / "m.sqlite3")
    applied = conn.execute("SELECT version, name, applied_at FROM waymark_migrations").fetchall()
    conn.close()
    assert applied == [(v, name, NOW) for v, name, _ in base.load_migrations("sqlite")]


class Failing(sqlite.SQLiteStore):
    """A SQLite store whose migration raises ``error`` (counting the calls)."""

    def __init__(self, path: str, error: Exception | None) -> None:
        super().__init__(path)
        self.error = error
        self.migrations = 0

    def migrate(self) -> None:
        self.migrations += 1
        if self.error is not None:
            raise self.error


def test_ready_migrates_once_and_names_an_unreachable_database(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sqlite3")
    fine = Failing(path, None)
    assert fine.ready() is fine and fine.ready() is fine
    assert fine.migrations == 1
    fine.close()
    locked = Failing(path, sqlite3.OperationalError("database is locked\n"))
    with pytest.raises(errors.EngineError) as info:
        locked.ready()
    assert str(info.value) == (
        f"cannot reach the system database sqlite:///{path}: database is locked; check the "
        "database URL and that the server is running"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(errors.EngineError):
        locked.ready()  # not marked migrated: tried again
    assert locked.migrations == 2
    locked.close()
    broken = Failing(path, sqlite3.OperationalError("no such table: x"))
    with pytest.raises(sqlite3.OperationalError, match=r"^no such table: x$"):
        broken.ready()
    broken.close()


# -- retrying ----------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.t += seconds


class Counting:
    def __init__(self) -> None:
        self.retried = 0
        self.sizes: list[int] = []

    def db_error_retried(self) -> None:
        self.retried += 1

    def commit_batch(self, size: int) -> None:
        self.sizes.append(size)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(base, "time", fake)
    return fake


@pytest.fixture
def lite(tmp_path: Path, now: Clock) -> Iterator[sqlite.SQLiteStore]:
    found = sqlite.SQLiteStore(str(tmp_path / "s.sqlite3"))
    found.ready()
    yield found
    found.close()


def test_a_transient_error_is_retried_with_growing_delays(
    lite: sqlite.SQLiteStore, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Counting()
    lite.metrics = metrics  # type: ignore[assignment]
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) <= 8:
            raise sqlite3.OperationalError("database is locked\nsecond line")
        return "done"

    with caplog.at_level(logging.WARNING, logger="waymark.store"):
        assert lite._retrying(flaky) == "done"
    assert fake_time.slept == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert metrics.retried == 8
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == [
        "system database unavailable (database is locked); retrying in 0.05 s",
        "system database unavailable (database is locked); retrying in 0.10 s",
    ]
    assert all(getattr(r, "action", None) == "store.retry" for r in caplog.records)


def test_a_blank_transient_error_is_logged_as_it_is(
    lite: sqlite.SQLiteStore,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lite, "is_transient", lambda exc: True)
    calls: list[int] = []

    def once() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("  ")
        return 7

    with caplog.at_level(logging.WARNING, logger="waymark.store"):
        assert lite._retrying(once) == 7
    assert [r.getMessage() for r in caplog.records] == [
        "system database unavailable (  ); retrying in 0.05 s"
    ]


def test_retrying_gives_up_after_retry_for_s_naming_the_database(
    lite: sqlite.SQLiteStore, fake_time: FakeTime
) -> None:
    lite.retry_for_s = 3.0

    def down() -> None:
        raise sqlite3.OperationalError("database is busy ")

    with pytest.raises(errors.SystemDatabaseUnavailableError) as info:
        lite._retrying(down)
    assert str(info.value) == (
        f"the system database sqlite:///{lite.path} stayed unreachable for 3 s: database is busy"
    )
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert fake_time.slept == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]  # 3.15 s: past the 3 s


def test_retrying_stops_at_once_on_a_bad_statement_or_a_closed_store(
    lite: sqlite.SQLiteStore, fake_time: FakeTime
) -> None:
    def bad() -> None:
        raise sqlite3.OperationalError("no such column: x")

    with pytest.raises(sqlite3.OperationalError, match=r"^no such column: x$"):
        lite._retrying(bad)
    lite._closed = True

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match=r"^database is locked$"):
        lite._retrying(locked)
    assert fake_time.slept == []


# -- workflows -----------------------------------------------------------------------------------


def test_a_new_workflow_is_stored_column_by_column(st: Store, db: Database) -> None:
    full = new(
        "w",
        status="ENQUEUED",
        executor_id=None,
        started_at=None,
        queue_name="q",
        timeout_ms=1500,
        deadline_ms=NOW + 9,
        priority=3,
        deduplication_id="d",
        delay_until=NOW + 7,
        parent_workflow_id="p",
        forked_from="f",
        traceparent="00-abc-def-01",
        attributes='{"a":1}',
        partition_key="t",
    )
    assert st.insert_workflow(full) is True
    got = st.get_workflow("w")
    assert got is not None
    assert got.attributes in ('{"a":1}', '{"a": 1}')
    assert got == row(
        "w",
        status="ENQUEUED",
        executor_id=None,
        started_at=None,
        queue_name="q",
        timeout_ms=1500,
        deadline_ms=NOW + 9,
        parent_workflow_id="p",
        forked_from="f",
        attributes=got.attributes,
        partition_key="t",
    )
    assert db.raw(
        "SELECT application_id, priority, deduplication_id, delay_until_epoch_ms, traceparent"
        " FROM workflow_status WHERE workflow_uuid = %s",
        ("w",),
    ) == [("app", 3, "d", NOW + 7, "00-abc-def-01")]
    assert st.get_traceparent("w") == "00-abc-def-01"
    assert st.get_traceparent("nope") is None and st.get_workflow("nope") is None
    assert st.get_workflow_outcome("w") == records.Outcome("ENQUEUED", None, None, 0, None)
    assert st.get_workflow_outcome("nope") is None
    assert st.insert_workflow(new("w", name="other")) is False
    assert st.get_workflow("w") == got


def test_a_held_deduplication_id_is_refused_naming_the_workflow(st: Store) -> None:
    queued = {"status": "ENQUEUED", "queue_name": "q", "deduplication_id": "d"}
    assert st.insert_workflow(new("a", **queued))
    with pytest.raises(errors.QueueDeduplicatedError) as info:
        st.insert_workflow(new("b", **queued))
    assert (info.value.workflow_id, info.value.queue_name, info.value.deduplication_id) == (
        "b",
        "q",
        "d",
    )
    with pytest.raises(errors.QueueDeduplicatedError) as refused:
        asyncio.run(st.insert_workflow_async(new("c", **queued)))
    assert refused.value.workflow_id == "c"
    assert st.deduplicated_holder("q", "d") == "a"
    assert st.deduplicated_holder("q", "other") is None
    assert st.deduplicated_holder("other", "d") is None
    assert st.cancel_workflow("a")
    assert st.deduplicated_holder("q", "d") is None  # finished: free again
    assert st.insert_workflow(new("b", **queued))


def test_an_async_insert_stores_the_same_row(st: Store) -> None:
    assert asyncio.run(st.insert_workflow_async(new("a", timeout_ms=5))) is True
    assert asyncio.run(st.insert_workflow_async(new("a"))) is False
    assert st.get_workflow("a") == row("a", timeout_ms=5)


def test_a_unique_violation_of_another_kind_is_not_a_deduplication(st: Store) -> None:
    def boom(*_: Any, **__: Any) -> list[Any]:
        raise sqlite3.IntegrityError("UNIQUE constraint failed: workflow_status.other")

    st._committer = groupcommit.GroupCommitter(boom)
    with pytest.raises(sqlite3.IntegrityError):
        st.insert_workflow(new("x", queue_name="q", deduplication_id="d"))
    with pytest.raises(sqlite3.IntegrityError):
        asyncio.run(st.insert_workflow_async(new("x", queue_name="q", deduplication_id="d")))


def test_a_child_and_its_parents_step_are_written_together(st: Store) -> None:
    st.insert_workflow(new("p"))
    child = new("p-1", parent_workflow_id="p")
    assert st.insert_child(child, step("p", 1, child_workflow_id="p-1"), "exec-1") == (
        True,
        records.StepOutcome(True, "PENDING", True),
    )
    assert st.list_steps("p") == [records.StepRow(1, "s1", '"out1"', None, "p-1", NOW - 5, NOW)]
    assert st.get_workflow("p-1") == row("p-1", parent_workflow_id="p")
    assert st.insert_child(child, step("p", 1), "exec-1") == (
        False,
        records.StepOutcome(False, None, True),
    )
    other = new("p-2", parent_workflow_id="p")
    assert st.insert_child(other, step("p", 2), "exec-2") == (
        True,
        records.StepOutcome(True, "PENDING", False),  # exec-2 does not own p
    )
    assert sorted(st.list_child_ids("p")) == ["p-1", "p-2"]
    assert st.list_child_ids("p-1") == []


def test_a_fork_copies_steps_attempts_and_streams_before_its_start(st: Store) -> None:
    st.insert_workflow(new("o"))
    for n in (1, 2, 3):
        st.record_step(step("o", n), "exec-1")
        st.attempts.record_attempt(records.NewAttempt("o", n, f"e{n}", f"tb{n}", NOW - 9, NOW - 8))
    st.streams.write_stream(step("o", 4, name="w1"), "k", '"v1"', False, "exec-1")
    st.streams.write_stream(step("o", 5, name="w2"), "k", '"v2"', False, "exec-1")
    fork = new("f", forked_from="o", status="ENQUEUED", queue_name="q", executor_id=None)
    assert st.fork_workflow(fork, "o", 5) is True
    assert [s.step_id for s in st.list_steps("f")] == [1, 2, 3, 4]
    assert st.list_steps("f") == st.list_steps("o")[:4]
    assert st.attempts.list_attempts("f", None) == [
        records.AttemptRow(n, 1, f"e{n}", f"tb{n}", NOW - 9, NOW - 8) for n in (1, 2, 3)
    ]
    assert [(r["seq"], r["value"]) for r in st.streams.read_stream("f", "k", 0)] == [(0, '"v1"')]
    got = st.get_workflow("f")
    assert got is not None and (got.forked_from, got.queue_name) == ("o", "q")
    assert st.fork_workflow(new("f"), "o", 1) is False  # taken
    assert st.fork_workflow(new("g"), "o", 1) is True
    assert st.list_steps("g") == [] and st.attempts.list_attempts("g", None) == []


def test_finishing_needs_pending_and_the_owner(st: Store, db: Database, now: Clock) -> None:
    st.insert_workflow(new("w"))
    assert st.finish_workflow("w", "SUCCESS", "exec-2", '"x"', None) is None  # not the owner
    now.now = NOW + 10
    assert st.finish_workflow("w", "SUCCESS", "exec-1", '"x"', None) == records.Outcome(
        "SUCCESS", '"x"', None, 0, "exec-1"
    )
    assert st.get_workflow("w") == row(
        "w", status="SUCCESS", output='"x"', updated_at=NOW + 10, completed_at=NOW + 10
    )
    assert st.finish_workflow("w", "ERROR", "exec-1", None, '"e"') is None  # no longer PENDING
    st.insert_workflow(new("e"))
    st.claim_recoveries(["e"], "exec-1")
    assert st.finish_workflow("e", "ERROR", "exec-1", None, '"bad"', "Traceback...") == (
        records.Outcome("ERROR", None, '"bad"', 1, "exec-1")
    )
    assert db.raw("SELECT traceback FROM workflow_status WHERE workflow_uuid = %s", ("e",)) == [
        ("Traceback...",)
    ]
    st.insert_workflow(new("t"))
    assert st.finish_workflow("t", "ERROR", "exec-2", None, '"bad"', "tb") is None
    assert db.raw(
        "SELECT traceback, status FROM workflow_status WHERE workflow_uuid = %s", ("t",)
    ) == [(None, "PENDING")]


def test_an_async_finish_needs_the_same(st: Store) -> None:
    st.insert_workflow(new("w"))
    st.claim_recoveries(["w"], "exec-1")
    st.claim_recoveries(["w"], "exec-1")
    assert asyncio.run(st.finish_workflow_async("w", "SUCCESS", "exec-2", "1", None)) is None
    assert asyncio.run(
        st.finish_workflow_async("w", "SUCCESS", "exec-1", "1", None)
    ) == records.Outcome("SUCCESS", "1", None, 2, "exec-1")
    got = st.get_workflow("w")
    assert got is not None and (got.status, got.output, got.completed_at) == ("SUCCESS", "1", NOW)


def test_a_status_is_set_only_while_pending(st: Store, now: Clock) -> None:
    st.insert_workflow(new("w"))
    now.now = NOW + 3
    assert st.set_status_if_pending("w", "CANCELLED", '"why"') is True
    assert st.get_workflow("w") == row(
        "w", status="CANCELLED", error='"why"', updated_at=NOW + 3, completed_at=NOW + 3
    )
    assert st.set_status_if_pending("w", "ERROR", None) is False


def test_recovery_finds_this_executors_pending_rows_of_its_version(st: Store, now: Clock) -> None:
    st.insert_workflow(new("b"))
    now.now = NOW + 1
    st.insert_workflow(new("a"))
    st.insert_workflow(new("other-exec", executor_id="exec-2"))
    st.insert_workflow(new("other-version", application_version="v2"))
    st.insert_workflow(new("queued", status="ENQUEUED", executor_id="exec-1", queue_name="q"))
    assert st.recoverable_workflows("exec-1", "v1") == ["b", "a"]  # oldest first
    now.now = NOW + 5
    claimed = st.claim_recoveries(["a"], "exec-1")[0]
    assert claimed == row("a", created_at=NOW + 1, updated_at=NOW + 5, recovery_attempts=1)
    assert st.claim_recoveries(["a"], "exec-2")[0] is None
    assert st.claim_recoveries(["queued"], "exec-1")[0] is None
    # Many in one transaction, each with its own outcome; none is no write at all.
    claimed_b, again, queued = st.claim_recoveries(["b", "a", "queued"], "exec-1")
    assert claimed_b == row("b", updated_at=NOW + 5, recovery_attempts=1)
    assert again == row("a", created_at=NOW + 1, updated_at=NOW + 5, recovery_attempts=2)
    assert queued is None
    assert st.claim_recoveries([], "exec-1") == []


# list_workflows with no filter (the first ten, oldest first unless a test says otherwise).
UNFILTERED: dict[str, Any] = {
    "statuses": None,
    "name": None,
    "id_prefix": None,
    "queue_name": None,
    "application_version": None,
    "created_after": None,
    "created_before": None,
    "limit": 10,
    "offset": 0,
}


def test_listing_applies_every_filter(st: Store, now: Clock) -> None:
    for n, (name, queue, version) in enumerate(
        [("a", None, "v1"), ("b", "q", "v1"), ("a", "q", "v2"), ("b", None, "v2")]
    ):
        now.now = NOW + n
        st.insert_workflow(new(f"id-{n}", name=name, queue_name=queue, application_version=version))
    st.cancel_workflow("id-3")
    everything = {**UNFILTERED, "newest_first": False}

    def ids(**given: Any) -> list[str]:
        return [r.workflow_id for r in st.list_workflows(**{**everything, **given})]

    assert ids() == ["id-0", "id-1", "id-2", "id-3"]
    assert ids(newest_first=True) == ["id-3", "id-2", "id-1", "id-0"]
    assert ids(statuses=["CANCELLED"]) == ["id-3"]
    assert ids(statuses=["PENDING", "CANCELLED"]) == ["id-0", "id-1", "id-2", "id-3"]
    assert ids(name="a") == ["id-0", "id-2"]
    assert ids(id_prefix="id-1") == ["id-1"]
    assert ids(queue_name="q") == ["id-1", "id-2"]
    assert ids(application_version="v2") == ["id-2", "id-3"]
    assert ids(created_after=NOW + 1) == ["id-1", "id-2", "id-3"]
    assert ids(created_before=NOW + 1) == ["id-0"]
    assert ids(limit=2, offset=1) == ["id-1", "id-2"]
    listed = st.list_workflows(**{**everything, "id_prefix": "id-3"})
    assert listed == [
        row(
            "id-3",
            name="b",
            application_version="v2",
            status="CANCELLED",
            created_at=NOW + 3,
            updated_at=NOW + 3,
            completed_at=NOW + 3,
        )
    ]


def test_attributes_merge_and_filter_the_list(st: Store) -> None:
    st.insert_workflow(new("w", attributes='{"a":1}'))
    st.insert_workflow(new("x", attributes='{"a":2}'))
    outcome = st.set_attributes(step("w", 1, name="set"), '{"b":"two"}', "exec-1")
    assert outcome == records.StepOutcome(True, "PENDING", True)
    assert st.list_steps("w")[0].name == "set"

    for newest in (True, False):
        found = st.list_workflows(
            **UNFILTERED, newest_first=newest, attributes=st.attribute_filter({"a": 1, "b": "two"})
        )
        assert [r.workflow_id for r in found] == ["w"]
    both = st.list_workflows(
        **UNFILTERED, newest_first=False, attributes=st.attribute_filter({"a": 2})
    )
    assert [r.workflow_id for r in both] == ["x"]


def test_steps_record_once_and_report_status_and_owner(st: Store, now: Clock) -> None:
    st.insert_workflow(new("w"))
    now.now = NOW + 2
    assert st.record_step(step("w", 1, error='"e"', output=None), "exec-1") == (
        records.StepOutcome(True, "PENDING", True)
    )
    assert st.record_step(step("w", 1), "exec-1") == records.StepOutcome(False, None, True)
    assert asyncio.run(st.record_step_async(step("w", 2), "exec-9")) == records.StepOutcome(
        True, "PENDING", False
    )
    assert asyncio.run(st.record_step_async(step("w", 2), "exec-1")) == records.StepOutcome(
        False, None, True
    )
    assert asyncio.run(st.record_step_async(step("w", 3), "exec-1")) == records.StepOutcome(
        True, "PENDING", True
    )
    assert st.get_step("w", 1) == (
        records.StepRow(1, "s1", None, '"e"', None, NOW - 5, NOW + 2),
        "exec-1",
    )
    assert st.get_step("w", 4) is None
    assert [s.step_id for s in st.list_steps("w")] == [1, 2, 3]
    assert st.list_steps("nope") == []


def test_a_name_is_seen_from_a_workflow_or_a_schedule(st: Store) -> None:
    assert not st.workflow_name_seen("wf")
    st.insert_workflow(new("w"))
    assert st.workflow_name_seen("wf") and not st.workflow_name_seen("other")


def test_cancelling_needs_an_unfinished_row_and_a_passed_deadline(st: Store, now: Clock) -> None:
    st.insert_workflow(new("w", deadline_ms=NOW + 10))
    assert st.cancel_past_deadline("w", '"late"') is False  # not yet
    now.now = NOW + 10
    assert st.cancel_past_deadline("w", '"late"') is True  # at the deadline
    assert st.get_workflow("w") == row(
        "w",
        status="CANCELLED",
        error='"late"',
        deadline_ms=NOW + 10,
        updated_at=NOW + 10,
        completed_at=NOW + 10,
    )
    assert st.cancel_past_deadline("w", '"late"') is False
    st.insert_workflow(new("none"))
    assert st.cancel_past_deadline("none", '"late"') is False  # no deadline at all
    assert st.cancel_workflow("none") is True
    assert st.get_workflow("none") == row(
        "none", status="CANCELLED", created_at=NOW + 10, updated_at=NOW + 10, completed_at=NOW + 10
    )
    assert st.cancel_workflow("none") is False
    assert st.cancel_workflow("missing") is False


def test_a_resume_puts_a_stopped_row_back_to_work(st: Store, now: Clock) -> None:
    st.insert_workflow(new("w", timeout_ms=100, queue_name="old"))
    st.claim_recoveries(["w"], "exec-1")
    st.finish_workflow("w", "ERROR", "exec-1", None, '"e"')
    assert (
        st.resume_workflow(
            "w", status="PENDING", executor_id="exec-2", queue_name=None, started_at=NOW + 1
        )
        is None
    )  # ERROR is final
    st.insert_workflow(new("c", timeout_ms=100, queue_name="old"))
    st.cancel_workflow("c")
    now.now = NOW + 20
    here = st.resume_workflow(
        "c", status="PENDING", executor_id="exec-2", queue_name=None, started_at=NOW + 20
    )
    assert here == row(
        "c",
        executor_id="exec-2",
        queue_name="old",
        timeout_ms=100,
        deadline_ms=NOW + 120,
        started_at=NOW + 20,
        updated_at=NOW + 20,
    )
    st.cancel_workflow("c")
    queued = st.resume_workflow(
        "c", status="ENQUEUED", executor_id=None, queue_name="new", started_at=None
    )
    assert queued == row(
        "c",
        status="ENQUEUED",
        executor_id=None,
        queue_name="new",
        timeout_ms=100,
        started_at=None,
        updated_at=NOW + 20,
    )


def test_a_handed_over_row_is_taken_once_by_its_version(st: Store, now: Clock) -> None:
    st.insert_workflow(new("w", executor_id="dispatcher"))
    assert st.take_over("w", "worker", "dispatcher", "v2") is None  # another version
    assert st.take_over("w", "worker", "someone-else", "v1") is None
    now.now = NOW + 4
    assert st.take_over("w", "worker", "dispatcher", "v1") == row(
        "w", executor_id="worker", updated_at=NOW + 4
    )
    assert st.take_over("w", "worker2", "dispatcher", "v1") is None  # taken already


def test_rows_handed_over_and_not_taken_come_back_once_per_interval(st: Store, now: Clock) -> None:
    st.insert_workflow(new("old", executor_id="d"))
    now.now = NOW + 50
    st.insert_workflow(new("young", executor_id="d"))
    now.now = NOW + 100
    assert st.handed_over_unclaimed("d", 60) == ["old"]  # updated before NOW + 40
    got = st.get_workflow("old")
    assert got is not None and got.updated_at == NOW + 100
    assert st.handed_over_unclaimed("d", 60) == []  # stamped: not again yet
    assert st.handed_over_unclaimed("d", 49) == ["young"]
    assert st.handed_over_unclaimed("other", 0) == []


# -- SQLite --------------------------------------------------------------------------------------


def test_sqlite_urls_name_a_file() -> None:
    assert sqlite.path_from_url("sqlite:///rel/w.db") == "rel/w.db"
    assert sqlite.path_from_url("sqlite:////abs/w.db") == "/abs/w.db"
    assert sqlite.path_from_url("sqlite://w.db") == "w.db"  # no slash to drop
    for bad in ("sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file::memory:?x=1"):
        with pytest.raises(ValueError) as info:
            sqlite.path_from_url(bad)
        assert str(info.value) == (
            f"database_url {bad!r} names no file; Waymark needs a file that several "
            "connections share, e.g. sqlite:///waymark.sqlite3"
        )


def test_sqlite_tells_its_errors_apart(lite: sqlite.SQLiteStore) -> None:
    assert lite.is_transient(sqlite3.OperationalError("database is locked"))
    assert lite.is_transient(sqlite3.OperationalError("database table is busy"))
    assert not lite.is_transient(sqlite3.OperationalError("no such table: x"))
    assert not lite.is_transient(sqlite3.IntegrityError("locked"))
    assert not lite.is_transient(RuntimeError("database is locked"))
    assert lite.describe() == f"sqlite:///{lite.path}"
    unique = sqlite3.IntegrityError("UNIQUE constraint failed: workflow_status.deduplication_id")
    assert lite._is_unique_violation(unique, "deduplication_id")
    assert not lite._is_unique_violation(unique, "debounce_key")
    assert not lite._is_unique_violation(
        sqlite3.OperationalError("deduplication_id"), "deduplication_id"
    )
    assert lite._list_param(["A", "B"]) == '["A", "B"]' and lite._list_param(None) is None
    assert lite.attribute_filter({"k": "é", "n": 1}) == '[["k", "\\"é\\""], ["n", "1"]]'


def test_sqlite_splits_a_script_into_whole_statements() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('1;2');\n  \n"
    assert sqlite._split_statements(script) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('1;2');",
    ]
    assert sqlite._split_statements("") == []


def test_a_failed_sqlite_batch_rolls_back_every_write(lite: sqlite.SQLiteStore) -> None:
    good = base.workflow_statement(new("good"))
    with pytest.raises(KeyError):
        lite._execute_batch([[good], [("no_such", {})]])
    assert lite.get_workflow("good") is None
    lite.queries["no_such"] = "SELECT nope FROM nowhere"
    with pytest.raises(sqlite3.OperationalError):
        lite._execute_batch([[good, ("no_such", {})]])
    assert lite.get_workflow("good") is None
    assert not lite._writer.in_transaction
    both = lite._execute_batch([[good], [base.workflow_statement(new("two"))]])
    assert [[list(map(tuple, rows)) for rows in write] for write in both] == [
        [[("good",)]],
        [[("two",)]],
    ]


def test_an_exclusive_transaction_commits_or_rolls_back(lite: sqlite.SQLiteStore) -> None:
    lite.insert_workflow(new("w"))
    with lite._exclusive() as run:
        assert [tuple(r) for r in run("get_traceparent", workflow_id="w")] == [(None,)]
        run("cancel_workflow", workflow_id="w", now=NOW)
    got = lite.get_workflow("w")
    assert got is not None and got.status == "CANCELLED"
    lite.insert_workflow(new("x"))
    with pytest.raises(RuntimeError), lite._exclusive() as run:
        run("cancel_workflow", workflow_id="x", now=NOW)
        raise RuntimeError("undo")
    got = lite.get_workflow("x")
    assert got is not None and got.status == "PENDING"


def test_closing_sqlite_closes_every_connection(tmp_path: Path) -> None:
    lite = sqlite.SQLiteStore(str(tmp_path / "c.sqlite3"))
    lite.ready()
    lite.get_workflow("w")  # a reader on this thread...
    lite.get_workflow("w")  # ...kept for its next read
    reader = threading.Thread(target=lite.get_workflow, args=("w",))
    reader.start()
    reader.join()
    with lite._exclusive():
        pass
    readers = list(lite._readers)
    assert len(readers) == 2
    lite.close()
    assert lite._closed and lite._readers == []
    for conn in [lite._writer, *readers, lite._exclusive_conn]:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")  # type: ignore[union-attr]


# -- group commit --------------------------------------------------------------------------------


class Held:
    """A batch executor that holds its first batch until released, recording every batch."""

    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.fail = set(fail)

    def __call__(self, writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        names = [name for write in writes for name, _ in write]
        self.batches.append(names)
        if len(self.batches) == 1:
            self.release.wait(30)
        if self.fail & set(names):
            raise RuntimeError(f"bad: {sorted(self.fail & set(names))}")
        return [[[name] for name, _ in write] for write in writes]


def test_group_commit_refuses_zero_leaders_with_the_reason() -> None:
    with pytest.raises(ValueError) as info:
        groupcommit.GroupCommitter(lambda writes: [], leaders=0)
    assert str(info.value) == "leaders must be >= 1 (commits in flight at once), got 0"


@pytest.mark.parametrize("relay", [True, False], ids=["relay", "hand-off"])
def test_a_leader_passes_the_queue_on_and_returns(relay: bool) -> None:
    """Writes queued behind a leader's batch go on in batches of the committer thread
    (``relay``: back to back, nobody waits to be woken to lead) or of the oldest waiting
    thread, woken to lead; either way the leader returns to its own work."""
    threads: list[str] = []
    second = threading.Event()

    def execute(writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            wait_until(lambda: len(committer._queue) == 3, what="three writes queued")
        elif len(threads) == 2:
            second.wait(30)
        return [[[name] for name, _ in write] for write in writes]

    committer = groupcommit.GroupCommitter(execute, relay=relay)
    leader = threading.Thread(target=committer.submit, args=([("first", {})],), name="leader")
    queued = [
        threading.Thread(target=committer.submit, args=([(f"q{i}", {})],), name=f"q{i}")
        for i in range(3)
    ]
    leader.start()
    wait_until(lambda: threads, what="the first commit")
    for n, t in enumerate(queued, 1):
        t.start()  # in this order in the queue
        wait_until(lambda n=n: len(committer._queue) == n, what=f"{n} writes queued")
    leader.join(10)
    assert not leader.is_alive()  # returned while the next batch is held
    wait_until(lambda: len(threads) == 2, what="the next batch")
    assert threads == ["leader", "waymark-commit" if relay else "q0"]
    assert all(t.is_alive() for t in queued)
    second.set()
    for t in queued:
        t.join(10)
    assert not any(t.is_alive() for t in queued)
    wait_until(lambda: committer._committers == 0, what="the committer to end, its queue empty")
    assert committer._leaders == 0 and committer._queue == []


def test_a_backlog_of_more_than_a_batch_gets_a_second_committer_beside_the_first() -> None:
    """Thousands of async writes queued: one batch cannot take them, so another committer
    thread commits beside the one running (two batches in flight, on Postgres two writers)."""
    lock = threading.Lock()
    in_flight, most = [0], [0]
    release = threading.Event()

    def execute(writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        release.wait(10)  # the first batch waits until the backlog is queued
        time.sleep(0.05)  # long enough for a batch beside it to start
        with lock:
            in_flight[0] -= 1
        return [[[]] for _ in writes]

    committer = groupcommit.GroupCommitter(execute, leaders=8, relay=True)

    async def backlog() -> None:
        writes = [committer.submit_async([("w", {})]) for _ in range(3 * groupcommit.MAX_BATCH)]
        done = asyncio.gather(*writes)
        await asyncio.sleep(0.1)  # every write queued behind the first
        release.set()
        await done

    asyncio.run(backlog())
    assert most[0] >= 2
    wait_until(lambda: committer._committers == 0, what="the committers to end")
    assert committer._leaders == 0 and committer._queue == []


def test_a_failing_batch_hook_does_not_stop_commits() -> None:
    def broken(size: int) -> None:
        raise RuntimeError("metrics down")

    committer = groupcommit.GroupCommitter(
        lambda writes: [[["ok"]] for _ in writes], on_batch=broken
    )
    assert committer.submit([("x", {})]) == [["ok"]]
    assert asyncio.run(committer.submit_async([("y", {})])) == [["ok"]]
    assert committer._leaders == 0


def test_a_long_queue_commits_in_batches_of_at_most_max_batch() -> None:
    held = Held()
    sizes: list[int] = []
    committer = groupcommit.GroupCommitter(held, on_batch=sizes.append)
    first = threading.Thread(target=committer.submit, args=([("first", {})],))
    first.start()
    wait_until(lambda: held.batches, what="the first commit")
    total = groupcommit.MAX_BATCH + 88

    async def many() -> list[list[Any]]:
        writes = asyncio.gather(
            *(committer.submit_async([(f"w{n}", {}), (f"x{n}", {})]) for n in range(total))
        )
        while len(committer._queue) < total:
            await asyncio.sleep(0.001)
        held.release.set()
        return await writes

    got = asyncio.run(many())
    first.join()
    assert sizes == [1, groupcommit.MAX_BATCH, 88]
    assert [len(b) for b in held.batches] == [1, 2 * groupcommit.MAX_BATCH, 2 * 88]
    assert got[0] == [["w0"], ["x0"]] and got[-1] == [[f"w{total - 1}"], [f"x{total - 1}"]]
    assert committer._leaders == 0 and committer._queue == []


def test_an_unsplittable_failure_fails_every_write_of_the_batch() -> None:
    held = Held(fail=["b"])
    committer = groupcommit.GroupCommitter(held, splittable=lambda exc: False)
    results: dict[str, object] = {}

    def submit(name: str) -> None:
        try:
            results[name] = committer.submit([(name, {})])
        except RuntimeError as exc:
            results[name] = str(exc)

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    wait_until(lambda: held.batches, what="the first commit")
    others = [threading.Thread(target=submit, args=(n,)) for n in ("a", "b")]
    for t in others:
        t.start()
    wait_until(lambda: len(committer._queue) == 2, what="two queued writes")
    held.release.set()
    for t in [first, *others]:
        t.join()
    assert results == {"first": [["first"]], "a": "bad: ['b']", "b": "bad: ['b']"}
    assert len(held.batches) == 2  # no write-by-write retry


def test_a_lone_failing_write_is_not_run_twice() -> None:
    calls: list[int] = []

    def execute(writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        calls.append(len(writes))
        raise RuntimeError("bad")

    committer = groupcommit.GroupCommitter(execute)
    with pytest.raises(RuntimeError, match=r"^bad$"):
        committer.submit([("x", {})])
    assert calls == [1]
    assert committer._leaders == 0  # the slot is free again
    with pytest.raises(RuntimeError):
        asyncio.run(committer.submit_async([("y", {})]))
    assert calls == [1, 1]


def test_a_split_batch_gives_each_write_its_own_rows() -> None:
    held = Held(fail=["bad"])
    committer = groupcommit.GroupCommitter(held)

    async def three() -> list[Any]:
        async def one(name: str) -> Any:
            try:
                return await committer.submit_async([(name, {}), (name + "!", {})])
            except RuntimeError as exc:
                return str(exc)

        first = asyncio.ensure_future(one("first"))
        while not held.batches:
            await asyncio.sleep(0.001)
        writes = asyncio.gather(one("a"), one("bad"), one("c"))
        while len(committer._queue) < 3:
            await asyncio.sleep(0.001)
        held.release.set()
        return [await first, *(await writes)]

    assert asyncio.run(three()) == [
        [["first"], ["first!"]],
        [["a"], ["a!"]],
        "bad: ['bad']",
        [["c"], ["c!"]],
    ]
    assert held.batches[1:] == [
        ["a", "a!", "bad", "bad!", "c", "c!"],
        ["a", "a!"],
        ["bad", "bad!"],
        ["c", "c!"],
    ]


def test_a_thread_behind_an_async_write_is_led_in_turn() -> None:
    """The slot passes in queue order: an async write first (a committer thread leads it),
    then the waiting thread leads its own batch."""
    held = Held()
    committer = groupcommit.GroupCommitter(held)
    got: dict[str, Any] = {}
    first = threading.Thread(target=lambda: got.update(first=committer.submit([("f", {})])))
    first.start()
    wait_until(lambda: held.batches, what="the first commit")
    loop = asyncio.new_event_loop()
    task = loop.create_task(committer.submit_async([("a", {})]))
    loop.run_until_complete(asyncio.sleep(0))  # the async write queues first
    assert len(committer._queue) == 1
    thread = threading.Thread(target=lambda: got.update(t=committer.submit([("t", {})])))
    thread.start()
    wait_until(lambda: len(committer._queue) == 2, what="the thread's write queued")
    held.release.set()
    assert loop.run_until_complete(task) == [["a"]]
    loop.close()
    first.join()
    thread.join()
    assert got == {"first": [["f"]], "t": [["t"]]}
    assert held.batches == [["f"], ["a", "t"]]


def test_a_closed_loop_does_not_break_the_commit() -> None:
    held = Held()
    committer = groupcommit.GroupCommitter(held)
    first = threading.Thread(target=committer.submit, args=([("f", {})],))
    first.start()
    wait_until(lambda: held.batches, what="the first commit")
    loop = asyncio.new_event_loop()
    gone = loop.create_task(committer.submit_async([("gone", {})]))
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()  # nobody awaits that write any more
    assert not gone.done()
    held.release.set()
    first.join()
    wait_until(lambda: committer._leaders == 0, what="the slot freed")
    assert held.batches == [["f"], ["gone"]]
    assert committer.submit([("after", {})]) == [["after"]]


def test_a_cancelled_awaiter_is_skipped() -> None:
    loop = asyncio.new_event_loop()
    done, cancelled = loop.create_future(), loop.create_future()
    cancelled.cancel()
    groupcommit._resolve([cancelled, done])
    assert done.result() is None and cancelled.cancelled()
    loop.close()


def test_hedging_leads_a_second_batch_only_with_a_free_slot() -> None:
    committer = groupcommit.GroupCommitter(lambda writes: [], leaders=2, hedge_s=0.0)
    queued = groupcommit._Write([("q", {})])
    committer._queue.append(queued)
    committer._leaders = 2
    assert committer._hedge(queued) is False and committer._queue == [queued]
    committer._leaders = 1
    assert committer._hedge(groupcommit._Write([])) is False  # taken by a leader already
    assert committer._hedge(queued) is True
    assert committer._queue == [] and committer._leaders == 2


# -- records -------------------------------------------------------------------------------------


def test_a_row_becomes_a_record_with_the_optional_columns_defaulted() -> None:
    columns = {
        "workflow_uuid": "w",
        "status": "PENDING",
        "name": "n",
        "inputs": "i",
        "output": "o",
        "error": "e",
        "executor_id": "x",
        "application_version": "v",
        "created_at": 1,
        "updated_at": 2,
        "recovery_attempts": 3,
        "queue_name": "q",
        "workflow_timeout_ms": 4,
        "workflow_deadline_epoch_ms": 5,
        "started_at_epoch_ms": 6,
        "completed_at": 7,
        "parent_workflow_id": "p",
        "forked_from": "f",
    }
    plain = records.WorkflowRow(
        "w", "PENDING", "n", "i", "o", "e", "x", "v", 1, 2, 3, "q", 4, 5, 6, 7, "p", "f"
    )
    assert records.workflow_row(columns) == plain
    full = {**columns, "fresh": 1, "attributes": "{}", "partition_key": "t"}
    got = records.workflow_row(full)
    assert (got.fresh, got.attributes, got.partition_key) == (True, "{}", "t")
    assert records.workflow_row({**columns, "fresh": 0}).fresh is False
    assert records.outcome(columns) == records.Outcome("PENDING", "o", "e", 3, "x")
    assert records.step_row(
        {
            "function_id": 1,
            "function_name": "s",
            "output": "o",
            "error": "e",
            "child_workflow_id": "c",
            "started_at_epoch_ms": 2,
            "completed_at_epoch_ms": 3,
        }
    ) == records.StepRow(1, "s", "o", "e", "c", 2, 3)
    assert records.executor_row(
        {
            "executor_id": "x",
            "application_version": "v",
            "hostname": "h",
            "pid": 9,
            "queues": "[]",
            "schedules": "{}",
            "started_at": 1,
            "last_heartbeat": 2,
        }
    ) == records.ExecutorRow("x", "v", "h", 9, "[]", "{}", 1, 2)
    assert records.attempt_row(
        {
            "function_id": 1,
            "attempt": 2,
            "error": "e",
            "traceback": "t",
            "started_at_epoch_ms": 3,
            "completed_at_epoch_ms": 4,
        }
    ) == records.AttemptRow(1, 2, "e", "t", 3, 4)


def test_a_sqlite_row_reads_its_optional_columns(lite: sqlite.SQLiteStore) -> None:
    """sqlite3.Row's ``in`` tests values, not names: the record must look at ``keys()``."""
    lite.insert_workflow(new("fresh", partition_key="fresh", queue_name="q", status="ENQUEUED"))
    got = lite.get_workflow("fresh")
    assert got is not None and got.partition_key == "fresh" and got.fresh is False


def test_announcing_a_freed_slot_writes_nothing_on_sqlite(lite: sqlite.SQLiteStore) -> None:
    sizes: list[int] = []
    lite.metrics = Counting()  # type: ignore[assignment]
    lite.announce_freed()
    assert lite.metrics.sizes == sizes  # type: ignore[attr-defined]
    assert lite._notify(signals.ENQUEUED) == []
    stop = threading.Event()
    assert lite.listen(lambda payload: None, stop) is None


def test_an_async_finish_writes_the_error(st: Store) -> None:
    st.insert_workflow(new("w"))
    assert asyncio.run(
        st.finish_workflow_async("w", "ERROR", "exec-1", None, '"boom"')
    ) == records.Outcome("ERROR", None, '"boom"', 0, "exec-1")
    got = st.get_workflow("w")
    assert got is not None and (got.status, got.error) == ("ERROR", '"boom"')


def test_retrying_gives_up_once_its_time_is_up_not_a_retry_later(
    lite: sqlite.SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Steps(FakeTime):
        def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)
            self.t += 0.5  # exact in binary: the deadline is reached, not passed

    fake = Steps()
    fake.t = 0.0
    monkeypatch.setattr(base, "time", fake)
    lite.retry_for_s = 1.0
    calls: list[float] = []

    def down() -> None:
        calls.append(fake.t)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(errors.SystemDatabaseUnavailableError):
        lite._retrying(down)
    assert calls == [0.0, 0.5, 1.0]


def test_the_generic_list_and_attribute_parameters(lite: sqlite.SQLiteStore) -> None:
    """What Postgres uses (SQLite overrides both): a list, and a JSON object for @>."""
    assert Store._list_param(lite, ("A", "B")) == ["A", "B"]
    assert Store._list_param(lite, None) is None
    assert Store.attribute_filter(lite, {"k": "é", "n": 1}) == '{"k": "é", "n": 1}'


def test_every_commit_is_reported_with_its_size(lite: sqlite.SQLiteStore) -> None:
    metrics = Counting()
    lite.metrics = metrics  # type: ignore[assignment]
    lite.insert_workflow(new("w"))
    lite.record_step(step("w", 1), "exec-1")
    assert metrics.sizes == [1, 1]


def test_the_queue_and_stream_parts_read_single_rows(lite: sqlite.SQLiteStore) -> None:
    assert not lite.queues.queue_seen("q")
    lite.insert_workflow(new("w", status="ENQUEUED", queue_name="q", executor_id=None))
    assert lite.queues.queue_seen("q") and not lite.queues.queue_seen("other")
    lite.insert_workflow(new("s"))
    assert not lite.streams.stream_closed("s", "k")
    lite.streams.write_stream(step("s", 1), "k", None, True, "exec-1")
    assert lite.streams.stream_closed("s", "k") and not lite.streams.stream_closed("s", "j")


class Notifying(sqlite.SQLiteStore):
    """SQLite with a stand-in for Postgres NOTIFY: which wake-ups each write carries."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.queries["notify_probe"] = "SELECT :payload AS payload"
        self.notified: list[str] = []

    def _notify(self, payload: str) -> list[groupcommit.Statement]:
        self.notified.append(payload)
        return [("notify_probe", {"payload": payload})]


@pytest.fixture
def notifying(tmp_path: Path, now: Clock) -> Iterator[Notifying]:
    found = Notifying(str(tmp_path / "n.sqlite3"))
    found.ready()
    yield found
    found.close()


def test_writes_wake_other_processes_with_the_right_key(notifying: Notifying) -> None:
    n = notifying
    n.insert_workflow(new("w", deadline_ms=NOW))
    assert n.cancel_past_deadline("w", '"late"')
    assert n.notified == ["stop:w"]
    n.insert_workflow(new("c"))
    assert n.cancel_workflow("c")
    assert n.notified[1:] == ["stop:c"]
    n.notified.clear()
    assert n.fork_workflow(new("f-here"), "c", 1)
    assert n.notified == []  # runs here: nobody to wake
    assert n.fork_workflow(new("f-q", status="ENQUEUED", queue_name="q", executor_id=None), "c", 1)
    assert n.notified == [signals.ENQUEUED]
    n.notified.clear()
    n.resume_workflow("c", status="PENDING", executor_id="e", queue_name=None, started_at=NOW)
    assert n.notified == []
    n.cancel_workflow("c")
    n.notified.clear()
    n.resume_workflow("c", status="ENQUEUED", executor_id=None, queue_name="q", started_at=None)
    assert n.notified == [signals.ENQUEUED]
    n.notified.clear()
    n.announce_freed()
    assert n.notified == [signals.ENQUEUED]


def test_the_writer_waits_30_s_for_a_locked_database(lite: sqlite.SQLiteStore) -> None:
    lite.get_workflow("w")
    for conn in (lite._writer, lite._reader()):
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_an_upgrade_applies_only_the_new_migrations(
    lite: sqlite.SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = base.load_migrations("sqlite")
    extra = (
        9999,
        "9999_extra.sql",
        "CREATE TABLE extra (x INTEGER);\nINSERT INTO extra VALUES (1);\n",
    )
    monkeypatch.setattr(base, "load_migrations", lambda dialect: [*known, extra])
    lite.migrate()
    lite.migrate()
    conn = sqlite3.connect(lite.path)
    assert conn.execute("SELECT x FROM extra").fetchall() == [(1,)]
    assert conn.execute(
        "SELECT version, name, applied_at FROM waymark_migrations ORDER BY version DESC LIMIT 1"
    ).fetchall() == [(9999, "9999_extra.sql", NOW)]
    conn.close()


def test_a_failed_migration_leaves_nothing_behind(
    lite: sqlite.SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = base.load_migrations("sqlite")
    bad = (9998, "9998_bad.sql", "CREATE TABLE half (x INTEGER);\nSELECT nope FROM nowhere;\n")
    monkeypatch.setattr(base, "load_migrations", lambda dialect: [*known, bad])
    with pytest.raises(sqlite3.OperationalError) as info:
        lite.migrate()
    assert str(info.value) == "no such table: nowhere"
    conn = sqlite3.connect(lite.path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    versions = [r[0] for r in conn.execute("SELECT version FROM waymark_migrations")]
    conn.close()
    assert "half" not in tables and 9998 not in versions
    assert versions == [v for v, _, _ in known]


def test_the_committer_thread_of_async_writes_is_a_named_daemon() -> None:
    seen: list[tuple[str, bool]] = []

    def execute(writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        seen.append((threading.current_thread().name, threading.current_thread().daemon))
        return [[[]] for _ in writes]

    committer = groupcommit.GroupCommitter(execute)
    asyncio.run(committer.submit_async([("x", {})]))
    assert seen == [("waymark-commit", True)]


def test_whether_to_split_is_decided_on_the_batchs_error() -> None:
    held = Held(fail=["bad"])
    asked: list[BaseException] = []

    def splittable(exc: BaseException) -> bool:
        asked.append(exc)
        return isinstance(exc, RuntimeError)

    committer = groupcommit.GroupCommitter(held, splittable=splittable)

    async def run() -> list[Any]:
        async def one(name: str) -> Any:
            try:
                return await committer.submit_async([(name, {})])
            except RuntimeError as exc:
                return str(exc)

        first = asyncio.ensure_future(one("first"))
        while not held.batches:
            await asyncio.sleep(0.001)
        writes = asyncio.gather(one("a"), one("bad"))
        while len(committer._queue) < 2:
            await asyncio.sleep(0.001)
        held.release.set()
        return [await first, *(await writes)]

    assert asyncio.run(run()) == [[["first"]], [["a"]], "bad: ['bad']"]
    assert [str(e) for e in asked] == ["bad: ['bad']"]


def test_an_executor_that_loses_a_write_is_an_error_not_a_silent_empty_result() -> None:
    committer = groupcommit.GroupCommitter(lambda writes: [])
    with pytest.raises(ValueError, match="zip"):
        committer.submit([("x", {})])


def test_the_schedule_burst_and_attempt_parts_read_and_write_this_store(
    notifying: Notifying,
) -> None:
    n = notifying
    n.schedules.upsert_schedule("nightly", "wf-s", "0 3 * * *", "UTC", None, NOW + 100)
    assert n.notified == [signals.SCHEDULES]
    assert n.schedules.get_schedule("nightly")["workflow_name"] == "wf-s"
    assert [r["name"] for r in n.schedules.list_schedules()] == ["nightly"]
    assert n.workflow_name_seen("wf-s")  # known from the schedule alone
    assert n.schedules.advance_schedule("nightly", NOW + 100, NOW + 100, NOW + 200)
    assert not n.schedules.advance_schedule("nightly", NOW + 100, NOW + 100, NOW + 200)
    burst = new("b", status="DELAYED", queue_name="q", executor_id=None, delay_until=NOW + 50)
    opened = replace(burst, debounce_key="k")
    assert n.bursts.open_burst(opened)
    twin = replace(opened, workflow_id="b2")
    assert not n.bursts.open_burst(twin)  # the key's burst is open already
    assert n.bursts.push_burst("wf", "k", '"new"', 10, None) == ("b", False)
    n.insert_workflow(new("w"))
    n.attempts.set_waiting("w", "exec-1", "recv:topic")
    assert n.attempts.get_waiting("w") == "recv:topic"
    assert n.attempts.get_waiting("missing") is None


def queued_behind(store: Store, *statements: groupcommit.Statement) -> list[Any]:
    """Writes already waiting when the next caller leads: they share its batch."""
    writes = [groupcommit._Write([s]) for s in statements]
    store._committer._queue.extend(writes)
    return writes


def test_closing_sqlite_waits_for_the_batch_in_flight(lite: sqlite.SQLiteStore) -> None:
    """The committer thread may be inside a batch when the store closes: the connection
    closes after it (closed under a running statement, the sqlite3 module crashes)."""
    running, release = threading.Event(), threading.Event()
    real = lite._writer

    class Held:  # the writer connection, its statement held until released
        def execute(self, *args: Any) -> Any:
            running.set()
            release.wait(10)
            return real.execute(*args)

        def close(self) -> None:
            real.close()

    lite._writer = Held()  # type: ignore[assignment]
    writer = threading.Thread(target=lite.insert_workflow, args=(new("w"),))
    writer.start()
    assert running.wait(10)
    closer = threading.Thread(target=lite.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the batch
    release.set()
    closer.join(10)
    writer.join(10)
    assert not closer.is_alive() and not writer.is_alive()
    with pytest.raises(sqlite3.ProgrammingError):
        real.execute("SELECT 1")  # closed, after the batch


def test_a_bad_write_in_a_batch_fails_alone(lite: sqlite.SQLiteStore) -> None:
    (bad,) = queued_behind(lite, ("no_such_query", {}))
    assert lite.insert_workflow(new("good")) is True
    assert bad.woken.wait(0) and isinstance(bad.error, KeyError)
    assert lite.get_workflow("good") is not None


def test_a_closing_store_fails_a_batch_on_a_locked_database_once(
    lite: sqlite.SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def locked(writes: Sequence[Sequence[groupcommit.Statement]]) -> list[list[Any]]:
        attempts.append(len(writes))
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(lite, "_execute_batch", locked)
    lite._closed = True  # no retrying: the error goes straight to the committer
    (other,) = queued_behind(lite, ("record_step", {}))
    with pytest.raises(sqlite3.OperationalError):
        lite.insert_workflow(new("w"))
    assert attempts == [2]  # transient: everyone's error, not split write by write
    assert isinstance(other.error, sqlite3.OperationalError)
    lite._closed = False


def test_dead_executors_work_is_requeued_and_they_are_forgotten(lite: sqlite.SQLiteStore) -> None:
    lite.executors.heartbeat("dead", "v1", "host", 42, '["q"]', None)
    (listed,) = lite.executors.list_executors()
    assert (listed.executor_id, listed.hostname, listed.pid, listed.queues) == (
        "dead",
        "host",
        42,
        '["q"]',
    )
    lite.insert_workflow(new("w", executor_id="dead"))
    # Expired a minute ago by the database's clock: dead.
    assert lite.executors.requeue_dead_executors("me", -60_000, "_waymark") == {"dead": ["w"]}
    got = lite.get_workflow("w")
    assert got is not None and (got.status, got.queue_name, got.executor_id) == (
        "ENQUEUED",
        "_waymark",
        None,
    )
    assert lite.executors.list_executors() == []
