"""Admission to the letter: every refused start, child, fork or resume names the value and the
fix; every row admitted is read back column by column; an ID that existed is the same workflow
again (or a conflict), never a second row.

``Admission`` is driven directly over a real store (SQLite and Postgres), with the clock frozen
so every stored time is known exactly, and a wake-up recorder in place of ``Wakeups``: an
admission that should wake the workers fires its queue's key (``enqueued_key``) exactly once,
one that should not fires nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from engine import attributes as attrs
from engine import errors, signals
from engine.admission import (
    UNCHANGED,
    Admission,
    Admitted,
    Parent,
    StartOptions,
    check_workflow_id,
    queue_name,
    seconds,
    timeout_ms,
)
from engine.queues import INTERNAL_QUEUE, Queue
from engine.registry import Registry
from engine.store import Store, connect, records
from tests.conftest import Database
from tests.store.test_store_rules import NOW, Clock, now, row  # noqa: F401  (now: a fixture)

VERSION = "v-admission"
EXECUTOR = "exec-1"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


class Recorder:
    """Stands in for ``Wakeups``: admission only ever fires."""

    def __init__(self) -> None:
        self.fired: list[str] = []

    def fire(self, key: str) -> None:
        self.fired.append(key)


class Setup:
    def __init__(self, store: Store, db: Database) -> None:
        self.store = store
        self.db = db
        self.wakeups = Recorder()
        self.registry = Registry(VERSION)
        self.registry.declare_queue(Queue("q"))
        self.registry.declare_queue(Queue("parts", partition_concurrency=1))
        self.engine = Admission(
            store,
            self.wakeups,  # type: ignore[arg-type]
            1000,
            registry=self.registry,
            executor_id=EXECUTOR,
            app_name="shop",
        )
        self.client = Admission(store, self.wakeups, 1000)  # type: ignore[arg-type]

    def row(self, workflow_id: str) -> records.WorkflowRow:
        found = self.store.get_workflow(workflow_id)
        assert found is not None, workflow_id
        return found

    def extra(self, workflow_id: str) -> tuple[Any, ...]:
        """The columns ``WorkflowRow`` does not carry."""
        rows = self.db.raw(
            "SELECT application_id, priority, deduplication_id, delay_until_epoch_ms,"
            " traceparent, debounce_key FROM workflow_status WHERE workflow_uuid = %s",
            (workflow_id,),
        )
        return tuple(rows[0])

    def count(self) -> int:
        return len(self.db.raw("SELECT workflow_uuid FROM workflow_status"))


@pytest.fixture
def s(db: Database, now: Clock) -> Iterator[Setup]:
    store = connect(db.url, db.schema).ready()
    yield Setup(store, db)
    store.close()


@pytest.fixture
def traced() -> Iterator[None]:
    """A current span, so admitted rows carry its trace context."""
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        yield


def running(workflow_id: str, name: str, inputs: str, **fields: Any) -> records.WorkflowRow:
    """The row of a workflow admitted PENDING here, as get_workflow reads it back."""
    mine = {"executor_id": EXECUTOR, "application_version": VERSION}
    return row(workflow_id, name=name, inputs=inputs, **{**mine, **fields})


def inputs_of(value: Any) -> str:
    return '{"positionalArgs":[' + value + '],"namedArgs":{}}'


# -- the small checks ------------------------------------------------------------------------


def test_seconds_and_timeouts_take_numbers_or_timedeltas() -> None:
    assert seconds(dt.timedelta(milliseconds=1500), "timeout") == 1.5
    assert seconds(0, "timeout") == 0.0 and isinstance(seconds(2, "timeout"), float)
    assert timeout_ms(None) is None
    assert timeout_ms(0.25) == 250
    assert timeout_ms(dt.timedelta(seconds=2)) == 2000
    for bad in (-0.5, True, "3", None):
        with pytest.raises(ValueError) as info:
            seconds(bad, "wait")  # type: ignore[arg-type]
        assert str(info.value) == (
            f"wait must be a number of seconds >= 0 or a timedelta, got {bad!r}"
        )
    with pytest.raises(ValueError) as info:
        timeout_ms(dt.timedelta(seconds=-1))
    assert str(info.value) == "timeout must be a number of seconds >= 0 or a timedelta, got -1.0"


def test_workflow_ids_are_generated_or_checked() -> None:
    made = check_workflow_id(None)
    assert len(made) == 36 and made.count("-") == 4 and made != check_workflow_id(None)
    assert check_workflow_id("order-1") == "order-1"
    for bad in ("", "   ", 7):
        with pytest.raises(ValueError) as info:
            check_workflow_id(bad)
        assert str(info.value) == f"workflow_id must be a non-empty string, got {bad!r}"
    with pytest.raises(ValueError) as info:
        check_workflow_id("", "new_workflow_id")
    assert str(info.value) == "new_workflow_id must be a non-empty string, got ''"
    assert queue_name(Queue("named")) == "named"
    assert queue_name("by-name") == "by-name" and queue_name(None) is None
    assert repr(UNCHANGED) == "<unchanged>"


@pytest.mark.parametrize(
    "options",
    [
        StartOptions(priority=1),
        StartOptions(deduplication_id=""),
        StartOptions(delay=0),
        StartOptions(partition_key="tenant"),
    ],
)
def test_a_child_refuses_every_queue_option(options: StartOptions) -> None:
    with pytest.raises(ValueError) as info:
        options.refuse_queue_options()
    assert str(info.value) == "priority, deduplication_id, delay and partition_key need a queue="


def test_a_child_without_queue_options_passes() -> None:
    StartOptions(workflow_id="x", timeout=3, attributes={"a": 1}).refuse_queue_options()
    StartOptions(partition_key="").refuse_queue_options()  # empty: no key given


# -- refused starts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "kind", "message"),
    [
        (
            {"deduplication_policy": "newest"},
            ValueError,
            "unknown deduplication_policy 'newest'; use one of 'reject', 'return-existing'",
        ),
        ({"priority": 1}, ValueError, "priority, deduplication_id and delay need a queue="),
        (
            {"deduplication_id": ""},
            ValueError,
            "priority, deduplication_id and delay need a queue=",
        ),
        ({"delay": 0}, ValueError, "priority, deduplication_id and delay need a queue="),
        ({"queue": "q", "priority": True}, TypeError, "priority must be an int, got True"),
        ({"queue": "q", "priority": 1.5}, TypeError, "priority must be an int, got 1.5"),
        ({"workflow_id": " "}, ValueError, "workflow_id must be a non-empty string, got ' '"),
        (
            {"timeout": -1},
            ValueError,
            "timeout must be a number of seconds >= 0 or a timedelta, got -1",
        ),
        (
            {"queue": "nope"},
            errors.EngineError,
            "unknown queue 'nope'; declare it with engine.queue()",
        ),
        (
            {"queue": Queue("undeclared")},
            errors.EngineError,
            "unknown queue 'undeclared'; declare it with engine.queue()",
        ),
        (
            {"queue": "parts"},
            ValueError,
            "queue 'parts' is partitioned: pass partition_key= (e.g. the tenant's ID)",
        ),
        (
            {"queue": "q", "partition_key": "t"},
            ValueError,
            "queue 'q' has no partitions; declare it with engine.queue(..., "
            "partition_concurrency=N) to use partition_key=",
        ),
        (
            {"partition_key": "t"},
            ValueError,
            "partition_key needs a queue= declared with partition_concurrency",
        ),
        (
            {"queue": "q", "delay": -2},
            ValueError,
            "delay must be seconds >= 0 or a timedelta, got -2",
        ),
        (
            {"attributes": {"k": [1]}},
            TypeError,
            "attributes: value [1] of key 'k' is a list, not a JSON scalar; attributes map "
            "string keys to str, int, float or bool values (store structured data in the "
            "workflow's input or events)",
        ),
    ],
)
def test_a_refused_start_names_the_value_and_writes_nothing(
    s: Setup, options: dict[str, Any], kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as info:
        s.engine.start_with("wf", 1, StartOptions(**options))
    assert str(info.value) == message
    assert s.count() == 0 and s.wakeups.fired == []
    assert s.registry.frozen_reason is None  # refused before the version was fixed


def test_an_input_that_does_not_serialize_names_the_workflow(s: Setup) -> None:
    with pytest.raises(errors.SerializationError) as info:
        s.engine.start_with("wf", "x" * 2000, StartOptions())
    assert str(info.value) == (
        "the input of workflow 'wf' is 2,038 bytes, over the 1,000-byte limit for a stored "
        "payload; store large data elsewhere and pass a reference to it (or raise the limit: "
        "max_payload_bytes=)"
    )
    assert s.count() == 0


def test_a_client_must_name_a_queue(s: Setup) -> None:
    with pytest.raises(ValueError) as info:
        s.client.start("wf", 1, workflow_id="c", timeout=None, queue=None)
    assert str(info.value) == "a client starts workflows on a queue; pass queue="
    assert s.count() == 0


def test_an_engine_without_an_executor_must_name_a_queue(s: Setup) -> None:
    admission = Admission(s.store, s.wakeups, 1000, registry=s.registry)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as info:
        admission.start("wf", 1, workflow_id="c", timeout=None, queue=None)
    assert str(info.value) == "a client starts workflows on a queue; pass queue="
    assert not admission.runs_here(VERSION)


# -- admitted starts -------------------------------------------------------------------------


@pytest.mark.usefixtures("traced")
def test_a_start_here_writes_a_pending_row_and_hands_it_to_run(s: Setup) -> None:
    admitted = s.engine.start(
        "wf", {"n": 1}, workflow_id="w1", timeout=2.5, queue=None, attributes={"tenant": "t"}
    )
    expected = running("w1", "wf", inputs_of('{"n":1}'), timeout_ms=2500, deadline_ms=NOW + 2500)
    got = s.row("w1")
    assert replace(got, attributes=None) == expected
    assert attrs.decode(got.attributes) == {"tenant": "t"}
    assert s.extra("w1") == ("shop", 0, None, None, TRACEPARENT, None)
    assert admitted.workflow_id == "w1"
    assert admitted.run_here == replace(expected, fresh=True, traceparent=TRACEPARENT)
    assert s.wakeups.fired == []
    assert s.registry.frozen_reason == "a workflow was already started"


def test_a_start_here_without_a_timeout_has_no_deadline(s: Setup) -> None:
    admitted = s.engine.start("wf", None, workflow_id="w2", timeout=None, queue=None)
    assert s.row("w2") == running("w2", "wf", inputs_of("null"))
    assert admitted.run_here is not None and admitted.run_here.deadline_ms is None
    assert s.extra("w2") == ("shop", 0, None, None, None, None)


@pytest.mark.usefixtures("traced")
def test_a_start_on_a_queue_writes_every_queue_column(s: Setup) -> None:
    admitted = s.engine.start(
        "wf",
        [1],
        workflow_id="q1",
        timeout=dt.timedelta(seconds=3),
        queue=Queue("q"),
        priority=4,
        deduplication_id="d1",
        application_version="ignored: an engine uses its own",
    )
    assert admitted == Admitted("q1")
    assert s.row("q1") == running(
        "q1",
        "wf",
        inputs_of("[1]"),
        status="ENQUEUED",
        executor_id=None,
        started_at=None,
        queue_name="q",
        timeout_ms=3000,
    )
    assert s.extra("q1") == ("shop", 4, "d1", None, TRACEPARENT, None)
    assert s.wakeups.fired == [signals.enqueued_key("q")]


def test_a_delayed_start_waits_until_its_time(s: Setup) -> None:
    s.engine.start(
        "wf", 1, workflow_id="d", timeout=None, queue="parts", delay=1.5, partition_key="t1"
    )
    row = s.row("d")
    assert (row.status, row.queue_name, row.partition_key) == ("DELAYED", "parts", "t1")
    assert s.extra("d")[3] == NOW + 1500
    s.engine.start("wf", 1, workflow_id="d0", timeout=None, queue="q", delay=0)
    assert s.row("d0").status == "ENQUEUED"  # no delay at all
    assert s.extra("d0")[3] is None
    assert s.wakeups.fired == [signals.enqueued_key("parts"), signals.enqueued_key("q")]


def test_a_client_start_keeps_its_version_and_any_queue(s: Setup) -> None:
    admitted = s.client.start(
        "by-name",
        2,
        workflow_id="c1",
        timeout=None,
        queue="not-declared-here",
        application_version="v9",
        partition_key="p",
    )
    assert admitted == Admitted("c1")
    row = s.row("c1")
    assert (row.status, row.queue_name, row.application_version) == (
        "ENQUEUED",
        "not-declared-here",
        "v9",
    )
    assert row.partition_key == "p"
    assert s.extra("c1")[0] is None  # a client has no app name


def test_the_same_id_again_is_the_same_workflow_not_a_second_row(s: Setup) -> None:
    first = s.engine.start("wf", 1, workflow_id="same", timeout=None, queue=None)
    assert first.run_here is not None
    again = s.engine.start("wf", 2, workflow_id="same", timeout=None, queue=None)
    assert again == Admitted("same")  # nothing new runs
    assert s.row("same").inputs == inputs_of("1")
    queued = s.engine.start("wf", 3, workflow_id="same", timeout=None, queue="q")
    assert queued == Admitted("same")
    assert s.count() == 1


def test_the_same_id_for_another_workflow_is_a_conflict(s: Setup) -> None:
    s.engine.start("wf", 1, workflow_id="taken", timeout=None, queue=None)
    with pytest.raises(errors.ConflictingWorkflowError) as info:
        s.engine.start("other", 1, workflow_id="taken", timeout=None, queue="q")
    assert str(info.value) == (
        "workflow ID 'taken' already belongs to workflow 'wf', not 'other'; use another workflow ID"
    )
    with pytest.raises(errors.ConflictingWorkflowError):
        s.engine.start(
            "other",
            1,
            workflow_id="taken",
            timeout=None,
            queue="q",
            deduplication_id="fresh",
            deduplication_policy="return-existing",
        )
    assert s.count() == 1


def test_a_deduplication_id_held_is_refused_or_returns_the_holder(s: Setup) -> None:
    s.engine.start("wf", 1, workflow_id="a", timeout=None, queue="q", deduplication_id="k")
    with pytest.raises(errors.QueueDeduplicatedError) as info:
        s.engine.start("wf", 1, workflow_id="b", timeout=None, queue="q", deduplication_id="k")
    assert str(info.value) == (
        "workflow 'b' was not enqueued: deduplication ID 'k' is held by another workflow on "
        "queue 'q' that is still enqueued or running"
    )
    returned = s.engine.start(
        "wf",
        1,
        workflow_id="c",
        timeout=None,
        queue="q",
        deduplication_id="k",
        deduplication_policy="return-existing",
    )
    assert returned == Admitted("a")
    assert s.count() == 1
    assert s.wakeups.fired == [signals.enqueued_key("q")]  # only the first enqueued anything


def test_return_existing_creates_when_free_and_returns_an_existing_id(s: Setup) -> None:
    options = StartOptions(
        workflow_id="r1", queue="q", deduplication_id="k", deduplication_policy="return-existing"
    )
    assert s.engine.start_with("wf", 1, options) == Admitted("r1")
    assert s.extra("r1")[2] == "k"
    assert s.wakeups.fired == [signals.enqueued_key("q")]
    # The same ID again (its deduplication ID held by itself): that workflow, not a refusal.
    assert s.engine.start_with("wf", 1, options) == Admitted("r1")
    assert s.count() == 1


def test_return_existing_without_a_deduplication_id_is_a_plain_start(s: Setup) -> None:
    options = StartOptions(workflow_id="p1", deduplication_policy="return-existing")
    admitted = s.engine.start_with("wf", 1, options)
    assert admitted.run_here is not None and admitted.run_here.status == "PENDING"


def test_return_existing_gives_up_when_the_holder_keeps_changing(s: Setup) -> None:
    s.engine.start("wf", 1, workflow_id="a", timeout=None, queue="q", deduplication_id="k")
    calls: list[tuple[str, str]] = []

    def vanished(queue: str, deduplication_id: str) -> None:
        calls.append((queue, deduplication_id))

    s.store.deduplicated_holder = vanished  # type: ignore[assignment,method-assign]
    with pytest.raises(errors.EngineError) as info:
        s.engine.start(
            "wf",
            1,
            workflow_id="b",
            timeout=None,
            queue="q",
            deduplication_id="k",
            deduplication_policy="return-existing",
        )
    assert str(info.value) == (
        "deduplication ID 'k' on queue 'q' kept changing hands; try the start again"
    )
    assert calls == [("q", "k")] * 10


# -- from a coroutine --------------------------------------------------------------------------


@pytest.mark.usefixtures("traced")
def test_an_async_start_writes_the_same_rows(s: Setup) -> None:
    async def both() -> tuple[Admitted, Admitted]:
        here = await s.engine.start_async("wf", 1, StartOptions(workflow_id="a1", timeout=1))
        queued = await s.engine.start_async(
            "wf", 2, StartOptions(workflow_id="a2", queue="q", priority=3)
        )
        return here, queued

    here, queued = asyncio.run(both())
    assert s.row("a1") == running(
        "a1", "wf", inputs_of("1"), timeout_ms=1000, deadline_ms=NOW + 1000
    )
    assert here.run_here is not None and here.run_here.fresh
    assert here.run_here.traceparent == TRACEPARENT
    assert queued == Admitted("a2")
    assert (s.row("a2").status, s.row("a2").queue_name) == ("ENQUEUED", "q")
    assert s.extra("a2") == ("shop", 3, None, None, TRACEPARENT, None)
    assert s.wakeups.fired == [signals.enqueued_key("q")]


def test_an_async_start_of_an_existing_id_is_the_same_or_a_conflict(s: Setup) -> None:
    s.engine.start("wf", 1, workflow_id="x", timeout=None, queue=None)

    async def again(name: str) -> Admitted:
        return await s.engine.start_async(name, 1, StartOptions(workflow_id="x"))

    assert asyncio.run(again("wf")) == Admitted("x")
    with pytest.raises(errors.ConflictingWorkflowError):
        asyncio.run(again("other"))
    with pytest.raises(ValueError) as info:
        asyncio.run(s.engine.start_async("wf", 1, StartOptions(priority=2)))
    assert str(info.value) == "priority, deduplication_id and delay need a queue="


def test_an_async_return_existing_start_returns_the_holder(s: Setup) -> None:
    s.engine.start("wf", 1, workflow_id="h", timeout=None, queue="q", deduplication_id="k")
    options = StartOptions(
        workflow_id="n", queue="q", deduplication_id="k", deduplication_policy="return-existing"
    )
    assert asyncio.run(s.engine.start_async("wf", 1, options)) == Admitted("h")
    with pytest.raises(errors.QueueDeduplicatedError):
        asyncio.run(
            s.engine.start_async(
                "wf", 1, StartOptions(workflow_id="n", queue="q", deduplication_id="k")
            )
        )
    assert s.count() == 1


# -- children ----------------------------------------------------------------------------------


def parent_row(s: Setup, deadline_ms: int | None = None) -> Parent:
    s.engine.start("parent", None, workflow_id="p", timeout=None, queue=None)
    return Parent("p", 3, deadline_ms, EXECUTOR)


@pytest.mark.usefixtures("traced")
def test_a_child_runs_here_with_the_earlier_deadline_and_its_step_recorded(s: Setup) -> None:
    parent = parent_row(s, deadline_ms=NOW + 5000)
    admitted, outcome = s.engine.child(
        parent,
        "kid",
        7,
        workflow_id=None,
        timeout=2,
        detached=False,
        queue=None,
        attributes={"n": 1},
    )
    expected = running(
        "p-3",
        "kid",
        inputs_of("7"),
        parent_workflow_id="p",
        timeout_ms=2000,
        deadline_ms=NOW + 2000,
    )
    got = s.row("p-3")
    assert replace(got, attributes=None) == expected
    assert attrs.decode(got.attributes) == {"n": 1}
    assert s.extra("p-3") == ("shop", 0, None, None, TRACEPARENT, None)
    assert outcome == records.StepOutcome(True, "PENDING", True)
    assert s.store.list_steps("p") == [records.StepRow(3, "kid", None, None, "p-3", NOW, NOW)]
    assert admitted.workflow_id == "p-3"
    assert admitted.run_here == replace(expected, fresh=True, traceparent=TRACEPARENT)
    assert s.wakeups.fired == []


def test_a_child_inherits_the_parents_deadline_unless_detached(s: Setup) -> None:
    parent = parent_row(s, deadline_ms=NOW + 5000)
    s.engine.child(parent, "kid", 1, workflow_id="k1", timeout=9, detached=False, queue=None)
    assert s.row("k1").deadline_ms == NOW + 5000  # the parent's is earlier
    s.engine.child(parent, "kid", 1, workflow_id="k2", timeout=None, detached=False, queue=None)
    assert s.row("k2").deadline_ms == NOW + 5000
    s.engine.child(parent, "kid", 1, workflow_id="k3", timeout=None, detached=True, queue=None)
    assert s.row("k3").deadline_ms is None
    s.engine.child(parent, "kid", 1, workflow_id="k4", timeout=4, detached=True, queue=None)
    assert (s.row("k4").deadline_ms, s.row("k4").timeout_ms) == (NOW + 4000, 4000)


def test_a_child_on_a_queue_waits_there_with_the_inherited_deadline(s: Setup) -> None:
    parent = parent_row(s, deadline_ms=NOW + 5000)
    admitted, outcome = s.engine.child(
        parent, "kid", 1, workflow_id="qk", timeout=2, detached=False, queue="q"
    )
    assert admitted == Admitted("qk")
    assert outcome.recorded
    assert s.row("qk") == running(
        "qk",
        "kid",
        inputs_of("1"),
        status="ENQUEUED",
        executor_id=None,
        started_at=None,
        queue_name="q",
        timeout_ms=2000,
        deadline_ms=NOW + 5000,
        parent_workflow_id="p",
    )
    assert s.wakeups.fired == [signals.enqueued_key("q")]
    s.engine.child(parent, "kid", 1, workflow_id="qd", timeout=None, detached=True, queue="q")
    assert s.row("qd").deadline_ms is None


def test_a_child_started_again_is_not_run_twice(s: Setup) -> None:
    parent = parent_row(s)
    s.engine.child(parent, "kid", 1, workflow_id=None, timeout=None, detached=False, queue="q")
    fired = list(s.wakeups.fired)
    admitted, outcome = s.engine.child(
        parent, "kid", 1, workflow_id=None, timeout=None, detached=False, queue="q"
    )
    assert admitted == Admitted("p-3") and not outcome.recorded
    assert s.wakeups.fired == fired  # nothing new enqueued
    here = Parent("p", 4, None, EXECUTOR)
    s.engine.child(here, "kid", 1, workflow_id=None, timeout=None, detached=False, queue=None)
    assert s.engine.child(
        here, "kid", 1, workflow_id=None, timeout=None, detached=False, queue=None
    )[0] == Admitted("p-4")
    with pytest.raises(errors.ConflictingWorkflowError):
        s.engine.child(
            Parent("p", 5, None, EXECUTOR),
            "other",
            1,
            workflow_id="p-4",
            timeout=None,
            detached=False,
            queue=None,
        )


def test_a_refused_child_writes_nothing(s: Setup) -> None:
    parent = parent_row(s)
    with pytest.raises(ValueError) as info:
        s.engine.child(parent, "kid", 1, workflow_id="", timeout=None, detached=False, queue=None)
    assert str(info.value) == "workflow_id must be a non-empty string, got ''"
    with pytest.raises(errors.EngineError) as unknown:
        s.engine.child(parent, "kid", 1, workflow_id=None, timeout=None, detached=False, queue="x")
    assert str(unknown.value) == "unknown queue 'x'; declare it with engine.queue()"
    assert s.count() == 1 and s.store.list_steps("p") == []


# -- forks -------------------------------------------------------------------------------------


def original(s: Setup, timeout: float | None = 3) -> None:
    """A finished workflow with two steps."""
    s.engine.start("wf", {"v": 1}, workflow_id="o", timeout=timeout, queue=None)
    for step in (1, 2):
        s.store.record_step(
            records.NewStep("o", step, f"s{step}", f'"out{step}"', None, NOW - 10), EXECUTOR
        )


@pytest.mark.parametrize("bad", [0, -1, True, "2", 1.0])
def test_a_fork_needs_a_step_number(s: Setup, bad: Any) -> None:
    original(s)
    with pytest.raises(ValueError) as info:
        s.engine.fork("o", bad, new_workflow_id="f", application_version=None)
    assert str(info.value) == f"start_step must be a step number >= 1, got {bad!r}"
    assert s.count() == 1


def test_a_fork_is_refused_with_the_reason(s: Setup) -> None:
    original(s)
    with pytest.raises(ValueError) as info:
        s.engine.fork("o", 1, new_workflow_id="", application_version=None)
    assert str(info.value) == "new_workflow_id must be a non-empty string, got ''"
    with pytest.raises(errors.WorkflowNotFoundError) as missing:
        s.engine.fork("nope", 1, new_workflow_id="f", application_version=None)
    assert str(missing.value) == "no workflow with ID 'nope'"
    with pytest.raises(errors.EngineError) as taken:
        s.engine.fork("o", 1, new_workflow_id="o", application_version=None)
    assert str(taken.value) == (
        "cannot fork into workflow ID 'o': it is already taken; pass another new_workflow_id"
    )
    with pytest.raises(errors.SerializationError):
        s.engine.fork("o", 1, new_workflow_id="f", application_version=None, input="x" * 2000)
    assert s.count() == 1 and s.wakeups.fired == []


@pytest.mark.usefixtures("traced")
def test_a_fork_here_copies_the_earlier_steps_and_runs_now(s: Setup) -> None:
    original(s)
    admitted = s.engine.fork("o", 2, new_workflow_id="f", application_version=None)
    expected = running(
        "f",
        "wf",
        inputs_of('{"v":1}'),
        forked_from="o",
        timeout_ms=3000,
        deadline_ms=NOW + 3000,
    )
    assert s.row("f") == expected
    assert s.extra("f") == (None, 0, None, None, TRACEPARENT, None)
    assert [(st.step_id, st.output) for st in s.store.list_steps("f")] == [(1, '"out1"')]
    assert admitted.run_here == replace(expected, fresh=False, traceparent=TRACEPARENT)
    assert s.wakeups.fired == []
    first = s.engine.fork("o", 1, new_workflow_id="f1", application_version=VERSION, input=5)
    assert first.run_here is not None and first.run_here.fresh  # nothing copied to read
    assert s.row("f1").inputs == inputs_of("5") and s.store.list_steps("f1") == []


def test_a_fork_without_a_timeout_has_no_deadline(s: Setup) -> None:
    original(s, timeout=None)
    s.engine.fork("o", 1, new_workflow_id="f", application_version=None)
    assert (s.row("f").timeout_ms, s.row("f").deadline_ms) == (None, None)


def test_a_fork_of_another_version_or_on_a_queue_waits_on_a_queue(s: Setup) -> None:
    original(s)
    other = s.engine.fork("o", 3, new_workflow_id="fv", application_version="v2")
    assert other == Admitted("fv")
    assert s.row("fv") == running(
        "fv",
        "wf",
        inputs_of('{"v":1}'),
        status="ENQUEUED",
        executor_id=None,
        started_at=None,
        application_version="v2",
        queue_name=INTERNAL_QUEUE,
        timeout_ms=3000,
        forked_from="o",
    )
    assert len(s.store.list_steps("fv")) == 2
    queued = s.engine.fork("o", 1, new_workflow_id="fq", application_version=None, queue="q")
    assert queued == Admitted("fq")
    row = s.row("fq")
    assert (row.status, row.queue_name, row.application_version) == ("ENQUEUED", "q", VERSION)
    assert s.wakeups.fired == [signals.enqueued_key(INTERNAL_QUEUE), signals.enqueued_key("q")]
    made = s.engine.fork("o", 1, new_workflow_id=None, application_version=None, queue="q")
    assert len(made.workflow_id) == 36


def test_a_client_fork_always_waits_on_a_queue(s: Setup) -> None:
    original(s)
    assert s.client.fork("o", 1, new_workflow_id="cf", application_version=None) == Admitted("cf")
    assert (s.row("cf").status, s.row("cf").queue_name) == ("ENQUEUED", INTERNAL_QUEUE)


# -- resumes -----------------------------------------------------------------------------------


def cancelled(s: Setup, workflow_id: str, queue: str | None) -> None:
    s.engine.start("wf", 1, workflow_id=workflow_id, timeout=2, queue=queue)
    assert s.store.cancel_workflow(workflow_id)


def test_a_resume_here_runs_now_and_a_second_does_nothing(s: Setup) -> None:
    cancelled(s, "r", None)
    admitted = s.engine.resume("r")
    assert admitted.workflow_id == "r"
    assert admitted.run_here == running(
        "r", "wf", inputs_of("1"), timeout_ms=2000, deadline_ms=NOW + 2000
    )
    assert s.row("r") == admitted.run_here
    assert s.wakeups.fired == []
    assert s.engine.resume("r") == Admitted("r")
    assert s.wakeups.fired == []


def test_a_resume_goes_back_to_its_queue_or_the_one_named(s: Setup) -> None:
    cancelled(s, "rq", "q")
    fired = len(s.wakeups.fired)
    assert s.engine.resume("rq") == Admitted("rq")
    row = s.row("rq")
    assert (row.status, row.queue_name, row.executor_id, row.started_at) == (
        "ENQUEUED",
        "q",
        None,
        None,
    )
    assert len(s.wakeups.fired) == fired + 1
    assert s.engine.resume("rq", queue=Queue("parts")) == Admitted("rq")  # still ENQUEUED
    assert s.row("rq").queue_name == "parts"
    assert s.engine.resume("rq") == Admitted("rq")
    assert s.row("rq").queue_name == "parts"  # now its own


def test_a_resume_of_another_version_goes_to_the_internal_queue(s: Setup) -> None:
    s.client.start("wf", 1, workflow_id="iv", timeout=None, queue=INTERNAL_QUEUE)
    s.store.cancel_workflow("iv")
    assert s.engine.resume("iv") == Admitted("iv")  # no version: not this process's
    assert (s.row("iv").status, s.row("iv").queue_name) == ("ENQUEUED", INTERNAL_QUEUE)
    s.db.raw("UPDATE workflow_status SET application_version = %s", (VERSION,))
    s.store.cancel_workflow("iv")
    here = s.engine.resume("iv")  # was on the internal queue only: runs here
    assert here.run_here is not None and here.run_here.executor_id == EXECUTOR
    assert s.row("iv").status == "PENDING"


def test_a_resume_is_refused_with_the_reason(s: Setup) -> None:
    with pytest.raises(errors.WorkflowNotFoundError) as info:
        s.engine.resume("missing")
    assert str(info.value) == "no workflow with ID 'missing'"
    with pytest.raises(errors.EngineError) as unknown:
        s.engine.resume("missing", queue="x")
    assert str(unknown.value) == "unknown queue 'x'; declare it with engine.queue()"
    assert s.wakeups.fired == []


# -- debounce ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("traced")
def test_a_debounce_opens_one_burst_and_joins_it(s: Setup) -> None:
    first = s.engine.debounce("wf", "key", 1, period_ms=500, max_wait_ms=None, queue=None)
    assert s.row(first) == running(
        first,
        "wf",
        inputs_of("1"),
        status="DELAYED",
        executor_id=None,
        started_at=None,
        queue_name=INTERNAL_QUEUE,
    )
    assert s.extra(first) == ("shop", 0, None, NOW + 500, TRACEPARENT, "key")
    assert s.registry.frozen_reason == "a workflow was already debounced"
    joined = s.engine.debounce("wf", "key", 2, period_ms=500, max_wait_ms=None, queue="q")
    assert joined == first and s.row(first).inputs == inputs_of("2")
    other = s.client.debounce("wf", "k2", 3, period_ms=100, max_wait_ms=None, queue="cq")
    assert other != first
    assert (s.row(other).queue_name, s.row(other).application_version) == ("cq", None)
    assert s.extra(other)[0] is None
    assert s.wakeups.fired == []


def test_a_debounce_on_a_partitioned_queue_is_refused(s: Setup) -> None:
    with pytest.raises(ValueError) as info:
        s.engine.debounce("wf", "key", 1, period_ms=500, max_wait_ms=None, queue="parts")
    assert str(info.value) == (
        "queue 'parts' is partitioned: pass partition_key= (e.g. the tenant's ID)"
    )


def test_a_debounce_gives_up_when_its_burst_keeps_starting(s: Setup) -> None:
    bursts = s.store.bursts
    bursts.push_burst = lambda *a: (None, True)  # type: ignore[method-assign]
    bursts.open_burst = lambda new: False  # type: ignore[method-assign]
    with pytest.raises(errors.EngineError) as info:
        s.engine.debounce("wf", "key", 1, period_ms=500, max_wait_ms=None, queue=None)
    assert str(info.value) == (
        "the burst of debounce key 'key' of workflow 'wf' kept starting while being joined; "
        "try the debounce again"
    )
    assert s.wakeups.fired == [signals.ENQUEUED] * 10


def test_a_debounce_pushes_its_burst_by_the_period_up_to_the_max_wait(s: Setup, now: Clock) -> None:
    first = s.engine.debounce("wf", "key", 1, period_ms=500, max_wait_ms=None, queue=None)
    now.now = NOW + 100
    assert s.engine.debounce("wf", "key", 2, period_ms=800, max_wait_ms=None, queue=None) == first
    assert s.extra(first)[3] == NOW + 900  # now + the period
    now.now = NOW + 200
    assert s.engine.debounce("wf", "key", 3, period_ms=800, max_wait_ms=300, queue=None) == first
    assert s.extra(first)[3] == NOW + 300  # the first debounce + the max wait
    now.now = NOW + 300
    second = s.engine.debounce("wf", "key", 4, period_ms=50, max_wait_ms=None, queue=None)
    assert second != first  # the first burst was due: it started, a new one opened
    assert s.row(first).status == "ENQUEUED" and s.row(second).status == "DELAYED"
    assert s.wakeups.fired == [signals.ENQUEUED]


def test_payloads_over_the_limit_name_the_workflow_everywhere(s: Setup) -> None:
    big = "x" * 2000
    over = (
        "is 2,038 bytes, over the 1,000-byte limit for a stored payload; store large data "
        "elsewhere and pass a reference to it (or raise the limit: max_payload_bytes=)"
    )
    with pytest.raises(errors.SerializationError) as info:
        s.engine.debounce("deb", "key", big, period_ms=500, max_wait_ms=None, queue=None)
    assert str(info.value) == f"the input of workflow 'deb' {over}"
    parent = parent_row(s)
    with pytest.raises(errors.SerializationError) as info:
        s.engine.child(
            parent, "kid", big, workflow_id=None, timeout=None, detached=False, queue=None
        )
    assert str(info.value) == f"the input of workflow 'kid' {over}"
    s.store.record_step(records.NewStep("p", 1, "s1", "1", None, NOW), EXECUTOR)
    with pytest.raises(errors.SerializationError) as info:
        s.engine.fork("p", 1, new_workflow_id="f", application_version=None, input=big)
    assert str(info.value) == f"the input of workflow 'parent' {over}"
    assert s.count() == 1 and len(s.store.list_steps("p")) == 1


@pytest.mark.usefixtures("traced")
def test_a_child_on_a_queue_carries_the_app_its_attributes_and_the_trace(s: Setup) -> None:
    parent = parent_row(s)
    s.engine.child(
        parent,
        "kid",
        1,
        workflow_id="qk",
        timeout=None,
        detached=False,
        queue="q",
        attributes={"tenant": "t"},
    )
    assert attrs.decode(s.row("qk").attributes) == {"tenant": "t"}
    assert s.extra("qk") == ("shop", 0, None, None, TRACEPARENT, None)


def test_only_an_engine_starts_children(s: Setup) -> None:
    with pytest.raises(AssertionError) as info:
        s.client.child(
            Parent("p", 1, None, EXECUTOR),
            "kid",
            1,
            workflow_id=None,
            timeout=None,
            detached=False,
            queue=None,
        )
    assert str(info.value) == "only a workflow of an engine starts children"


def test_a_resume_onto_a_queue_wakes_the_workers(s: Setup) -> None:
    cancelled(s, "rq", "q")
    s.wakeups.fired.clear()
    s.engine.resume("rq")
    assert s.wakeups.fired == [signals.enqueued_key("q")]


def test_an_async_return_existing_start_stores_its_input(s: Setup) -> None:
    options = StartOptions(
        workflow_id="n", queue="q", deduplication_id="k", deduplication_policy="return-existing"
    )
    assert asyncio.run(s.engine.start_async("wf", {"a": 1}, options)) == Admitted("n")
    assert s.row("n").inputs == inputs_of('{"a":1}')
