"""Async workflows have what sync ones have (API.md, "Precise points (version 2)"), on both
backends: direct patch calls, the async forms of every writing call (and the blocking forms
refused), a child's awaited result recorded, every start option, stream readers; and for
async steps the options of sync ones: timeout, recorded attempts, tracebacks, metrics, spans.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from engine import (
    Client,
    ConflictingWorkflowError,
    Engine,
    EngineError,
    QueueDeduplicatedError,
    Status,
    StepTimeoutError,
    WorkflowFailedError,
    metrics,
)
from tests.engine.test_metrics import sample
from tests.engine.test_recovery import rewind
from tests.engine.test_tracing import named, spans  # noqa: F401  (a fixture)
from tests.support import wait_until

LONG = 120.0


def run(coro):
    return asyncio.run(coro)


# -- patches, called directly ---------------------------------------------------------------


def test_an_async_workflow_calls_workflow_id_and_patches_directly(make_engine, db) -> None:
    def app(patched: bool) -> tuple[Engine, object]:
        engine = make_engine("patches", application_version="fixed")

        @engine.step(name="work")
        async def work(x: int) -> int:
            return x + 1

        @engine.workflow(name="evolving")
        async def evolving(ctx, x):
            branch = "old"
            if patched and ctx.patch("faster"):
                branch = "new"
            kept = ctx.deprecate_patch("gone")  # no marker recorded anywhere: records nothing
            return [ctx.workflow_id, branch, kept, await work(x)]

        return engine, evolving

    old, evolving = app(patched=False)
    old.launch()
    assert old.start_workflow(evolving, 1, workflow_id="ev-old").get_result(30) == [
        "ev-old", "old", True, 2,
    ]  # fmt: skip
    old.shutdown(timeout=5)
    rewind(db, "ev-old", keep_steps=1)  # it passed the patch point under the old code

    new, evolving = app(patched=True)
    new.launch()
    assert new.start_workflow(evolving, 1, workflow_id="ev-new").get_result(30) == [
        "ev-new", "new", True, 2,
    ]  # fmt: skip
    assert [s.name for s in new.list_steps("ev-new")] == ["waymark.patch:faster", "work"]
    # The old workflow replays under the new code: the old branch, no marker, same step IDs.
    assert new.retrieve_workflow("ev-old").get_result(30) == ["ev-old", "old", True, 2]
    assert [s.name for s in new.list_steps("ev-old")] == ["work"]
    # And the new one replays its marker: the new branch again, nothing recorded twice.
    new.shutdown(timeout=5)
    rewind(db, "ev-new", keep_steps=2)
    again, _ = app(patched=True)
    again.launch()
    assert again.retrieve_workflow("ev-new").get_result(30) == ["ev-new", "new", True, 2]
    assert [s.name for s in again.list_steps("ev-new")] == ["waymark.patch:faster", "work"]


# -- attributes and streams, awaited ------------------------------------------------------------


def test_attributes_and_streams_have_async_forms_recorded_once(make_engine, db) -> None:
    writes = {"n": 0}

    def app() -> tuple[Engine, object]:
        engine = make_engine("writer", application_version="v1")

        @engine.step(name="count")
        async def count() -> int:
            writes["n"] += 1
            return writes["n"]

        @engine.workflow(name="writer")
        async def writer(ctx, customer):
            await ctx.set_attributes_async({"customer": customer, "tier": 2})
            await ctx.write_stream_async("progress", {"at": 1})
            await ctx.write_stream_async("progress", {"at": 2})
            await ctx.close_stream_async("progress")
            return await count()

        return engine, writer

    engine, writer = app()
    engine.launch()
    assert engine.start_workflow(writer, "c-9", workflow_id="wr").get_result(30) == 1
    assert engine.get_workflow_status("wr").attributes == {"customer": "c-9", "tier": 2}
    assert [s.workflow_id for s in engine.list_workflows(attributes={"customer": "c-9"})] == ["wr"]
    assert [s.name for s in engine.list_steps("wr")] == [
        "waymark.set_attributes", "waymark.write_stream", "waymark.write_stream",
        "waymark.close_stream", "count",
    ]  # fmt: skip
    engine.shutdown(timeout=5)
    # A replay after the writes (crash before the last step) writes nothing again.
    rewind(db, "wr", keep_steps=4)
    again, _ = app()
    again.launch()
    assert again.retrieve_workflow("wr").get_result(30) == 2
    assert list(again.read_stream("wr", "progress", timeout=5)) == [{"at": 1}, {"at": 2}]

    async def read_all() -> tuple[list[object], list[object]]:
        with Client(db.url, schema=db.schema) as client:
            from_client = [v async for v in client.read_stream_async("wr", "progress")]
        from_engine = [v async for v in again.read_stream_async("wr", "progress", offset=1)]
        return from_client, from_engine

    assert run(read_all()) == ([{"at": 1}, {"at": 2}], [{"at": 2}])
    with Client(db.url, schema=db.schema) as client:
        assert list(client.read_stream("wr", "progress", timeout=5)) == [{"at": 1}, {"at": 2}]


def test_read_stream_async_waits_for_live_values_and_times_out(engine: Engine) -> None:
    gate = asyncio.Event()

    @engine.workflow(name="live")
    async def live(ctx):
        await ctx.write_stream_async("s", "first")
        await ctx.recv_async("more", timeout=LONG)
        await ctx.write_stream_async("s", "second")
        await ctx.close_stream_async("s")

    @engine.workflow(name="silent")
    def silent(ctx):
        return ctx.recv("never", timeout=LONG)

    engine.launch()

    async def main() -> list[object]:
        handle = await engine.start_workflow_async(live, workflow_id="live-1")
        seen = []
        async for value in engine.read_stream_async("live-1", "s", timeout=30):
            seen.append(value)
            if value == "first":
                gate.set()
                await engine.send_async("live-1", "go", "more")
        await handle.get_result_async(timeout=30)
        with pytest.raises(TimeoutError):
            async for _ in engine.read_stream_async("live-2", "s", timeout=0.2):
                pass
        return seen

    engine.start_workflow(silent, workflow_id="live-2")
    assert run(main()) == ["first", "second"]
    assert gate.is_set()
    engine.cancel_workflow("live-2")


@pytest.mark.parametrize(
    ("call", "names"),
    [
        ("set_attributes", "set_attributes_async"),
        ("write_stream", "write_stream_async"),
        ("close_stream", "close_stream_async"),
    ],
)
def test_the_blocking_writes_are_refused_naming_the_async_form(
    engine: Engine, call: str, names: str
) -> None:
    @engine.workflow(name="misuse")
    async def misuse(ctx):
        if call == "set_attributes":
            ctx.set_attributes({"a": 1})
        elif call == "write_stream":
            ctx.write_stream("s", 1)
        else:
            ctx.close_stream("s")

    engine.launch()
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(misuse, workflow_id="mis").get_result(timeout=30)
    assert failed.value.error_name == EngineError.__name__
    assert f"ctx.{names}(" in failed.value.error_message
    assert engine.list_steps("mis") == []  # nothing written
    assert engine.get_workflow_status("mis").attributes == {}


# -- a child's result, awaited durably ---------------------------------------------------------


def test_awaiting_a_child_is_a_recorded_wait_that_a_replay_does_not_repeat(make_engine, db) -> None:
    def app() -> tuple[Engine, object]:
        engine = make_engine("parent", application_version="v1")

        @engine.workflow(name="child")
        async def child(ctx, x):
            return x * 2

        @engine.workflow(name="parent")
        async def parent(ctx, x):
            handle = await ctx.start_workflow_async(child, x)
            return await handle.get_result_async(timeout=30) + 1

        return engine, parent

    engine, parent = app()
    engine.launch()
    assert engine.start_workflow(parent, 4, workflow_id="pa").get_result(30) == 9
    assert [(s.name, s.child_workflow_id, s.output) for s in engine.list_steps("pa")] == [
        ("child", "pa-1", None),
        ("waymark.get_result", "pa-1", 8),
    ]
    engine.shutdown(timeout=5)
    # The child is gone: a replay that waited again would fail (WorkflowNotFoundError).
    db.raw("DELETE FROM workflow_status WHERE workflow_uuid = 'pa-1'")
    rewind(db, "pa", keep_steps=2)
    again, _ = app()
    again.launch()
    assert again.retrieve_workflow("pa").get_result(30) == 9


# -- every start option ------------------------------------------------------------------------


def test_start_workflow_async_takes_every_option_of_start_workflow() -> None:
    sync_options = inspect.signature(Engine.start_workflow).parameters
    async_options = inspect.signature(Engine.start_workflow_async).parameters
    assert list(async_options) == list(sync_options)
    for name, param in sync_options.items():
        assert async_options[name].default == param.default, name


def test_start_workflow_async_options_take_effect(engine: Engine, db) -> None:
    tenants = engine.queue("tenants", partition_concurrency=1)

    @engine.workflow(name="task")
    async def task(ctx, x):
        return x

    engine.launch()
    engine.pause_queue("tenants")  # t1 holds "d" until both starts are made

    async def main() -> None:
        first = await engine.start_workflow_async(
            task, 1, workflow_id="t1", queue=tenants, partition_key="acme",
            deduplication_id="d", attributes={"customer": "acme"}, priority=3,
        )  # fmt: skip
        same = await engine.start_workflow_async(
            task, 2, queue=tenants, partition_key="acme", deduplication_id="d",
            deduplication_policy="return-existing",
        )  # fmt: skip
        assert same.workflow_id == "t1"
        engine.resume_queue("tenants")
        assert await first.get_result_async(timeout=30) == 1
        status = await first.get_status_async()
        assert (status.partition_key, status.attributes) == ("acme", {"customer": "acme"})
        with Client(db.url, schema=db.schema) as client:
            handle = await client.start_workflow_async(
                "task", 5, workflow_id="t2", attributes={"customer": "beta"}
            )
            assert await handle.get_result_async(timeout=30) == 5
            assert client.get_workflow_status("t2").attributes == {"customer": "beta"}
            plain = client.start_workflow("task", 6, workflow_id="t3", attributes={"k": "v"})
            assert plain.get_result(timeout=30) == 6
            assert client.get_workflow_status("t3").attributes == {"k": "v"}

    run(main())


def test_start_workflow_async_keeps_the_rules_of_start(engine: Engine, db) -> None:
    """The async start inserts through the group commit itself (no thread): the same ID is
    the same workflow again, never another; a held deduplication ID is refused; an input
    that is not JSON is refused before anything is written."""
    runs = []
    q = engine.queue("dq")

    @engine.workflow(name="once")
    async def once(ctx, x):
        runs.append(x)
        return x

    @engine.workflow(name="other")
    async def other(ctx, x):
        return x

    engine.launch()
    engine.pause_queue("dq")

    async def main() -> None:
        first = await engine.start_workflow_async(once, 1, workflow_id="same")
        assert await first.get_result_async(timeout=30) == 1
        again = await engine.start_workflow_async(once, 2, workflow_id="same")
        assert await again.get_result_async(timeout=30) == 1
        with pytest.raises(ConflictingWorkflowError) as conflict:
            await engine.start_workflow_async(other, 3, workflow_id="same")
        assert (conflict.value.existing_name, conflict.value.requested_name) == ("once", "other")
        await engine.start_workflow_async(once, 4, workflow_id="h", queue=q, deduplication_id="d")
        with pytest.raises(QueueDeduplicatedError) as held:
            await engine.start_workflow_async(
                once, 5, workflow_id="refused", queue=q, deduplication_id="d"
            )
        assert (held.value.queue_name, held.value.deduplication_id) == ("dq", "d")
        with pytest.raises(TypeError, match="JSON"):
            await engine.start_workflow_async(once, {1, 2}, workflow_id="bad")

    run(main())
    assert runs == [1]
    assert engine.get_workflow_status("refused") is None
    assert engine.get_workflow_status("bad") is None
    assert engine.get_workflow_status("h").status == Status.ENQUEUED


# -- async steps: the options of sync steps ---------------------------------------------------


def test_an_async_step_past_its_timeout_is_cancelled_and_fails(engine: Engine) -> None:
    cancelled = asyncio.Event()
    seen = {"cancelled": 0}

    @engine.step(name="stuck", timeout=0.2, max_attempts=2, interval_seconds=0.01)
    async def stuck() -> None:
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            seen["cancelled"] += 1
            cancelled.set()
            raise

    @engine.step(name="slow_sync", timeout=0.2)
    def slow_sync() -> str:
        import time

        time.sleep(1.0)  # a sync step cannot be interrupted: it is abandoned
        return "late"

    @engine.step(name="raises_timeout")
    async def raises_timeout() -> None:
        raise TimeoutError("its own")

    @engine.workflow(name="timed")
    async def timed(ctx, which):
        if which == "async":
            await stuck()
        elif which == "sync":
            return await ctx.run_step_async(slow_sync)
        else:
            await raises_timeout()

    engine.launch()
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(timed, "async", workflow_id="to-a").get_result(timeout=30)
    assert failed.value.error_name == StepTimeoutError.__name__
    assert "'stuck'" in failed.value.error_message and "0.2 s" in failed.value.error_message
    assert seen["cancelled"] == 2  # each attempt cancelled at its limit
    attempts = engine.list_attempts("to-a", 1)
    assert [(a.attempt, a.error["name"]) for a in attempts] == [
        (1, "StepTimeoutError"), (2, "StepTimeoutError"),
    ]  # fmt: skip
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(timed, "sync", workflow_id="to-s").get_result(timeout=30)
    assert failed.value.error_name == StepTimeoutError.__name__
    # A TimeoutError the step raises itself is its own error, not a step timeout.
    with pytest.raises(WorkflowFailedError) as failed:
        engine.start_workflow(timed, "own", workflow_id="to-o").get_result(timeout=30)
    assert failed.value.error_name == "TimeoutError"


def test_async_step_attempts_tracebacks_and_metrics(make_engine) -> None:
    reg = CollectorRegistry()
    engine: Engine = make_engine(metrics=metrics.Metrics(reg))
    tries = {"n": 0}

    @engine.step(name="flaky", max_attempts=3, interval_seconds=0.01)
    async def flaky() -> int:
        tries["n"] += 1
        if tries["n"] < 3:
            raise RuntimeError(f"not yet {tries['n']}")
        return tries["n"]

    @engine.step(name="boom")
    async def boom() -> None:
        raise ValueError("no luck")

    @engine.workflow(name="good")
    async def good(ctx):
        return await flaky()

    @engine.workflow(name="bad")
    async def bad(ctx):
        await boom()

    engine.launch()
    assert engine.start_workflow(good, workflow_id="g").get_result(timeout=30) == 3
    attempts = engine.list_attempts("g", 1)
    assert [(a.attempt, a.error) for a in attempts] == [
        (1, {"name": "RuntimeError", "message": "not yet 1"}),
        (2, {"name": "RuntimeError", "message": "not yet 2"}),
    ]
    assert all("in flaky" in a.traceback and "RuntimeError" in a.traceback for a in attempts)
    (step,) = engine.list_steps("g")
    assert (step.attempts, step.output) == (3, 3)
    with pytest.raises(WorkflowFailedError):
        engine.start_workflow(bad, workflow_id="b").get_result(timeout=30)
    status = engine.get_workflow_status("b")
    assert status.status == Status.ERROR
    assert "in boom" in status.traceback and "ValueError: no luck" in status.traceback
    (failed_step,) = engine.list_steps("b")
    assert "in boom" in failed_step.traceback
    assert sample(reg, "waymark_steps_total", step="flaky", outcome="success") == 1
    assert sample(reg, "waymark_steps_total", step="boom", outcome="error") == 1
    assert sample(reg, "waymark_step_retries_total", step="flaky") == 2
    assert sample(reg, "waymark_step_duration_seconds_count", step="flaky") == 1


def test_async_workflows_and_steps_have_spans_in_the_callers_trace(
    engine: Engine,
    spans,
) -> None:
    tries = {"n": 0}
    queue = engine.queue("aspans")

    @engine.step(name="charge", max_attempts=2, interval_seconds=0.01)
    async def charge(x: int) -> int:
        tries["n"] += 1
        if tries["n"] == 1:
            raise RuntimeError("flaky")
        return x * 2

    @engine.workflow(name="aorder")
    async def aorder(ctx, x):
        return await charge(x)

    engine.launch()
    tracer = trace.get_tracer("test")

    async def from_loop() -> int:
        with tracer.start_as_current_span("caller-loop") as span:
            handle = await engine.start_workflow_async(aorder, 3, workflow_id="as-loop")
        spans_of["as-loop"] = span
        return await handle.get_result_async(timeout=30)

    spans_of: dict[str, trace.Span] = {}
    assert run(from_loop()) == 6
    with tracer.start_as_current_span("caller-queue") as span:
        handle = engine.start_workflow(aorder, 4, workflow_id="as-queue", queue=queue)
    spans_of["as-queue"] = span
    assert handle.get_result(timeout=30) == 8
    wait_until(lambda: len(named(spans, "workflow aorder")) == 2, what="both execution spans")
    for wf in named(spans, "workflow aorder"):
        workflow_id = wf.attributes["waymark.workflow.id"]
        caller = spans_of[workflow_id].get_span_context()
        assert wf.context.trace_id == caller.trace_id and wf.parent.span_id == caller.span_id
        assert wf.attributes["waymark.workflow.name"] == "aorder"
        assert wf.attributes["waymark.executor.id"] == engine.executor_id
        assert wf.attributes["waymark.recovery"] is False
        assert wf.attributes.get("waymark.queue") == (
            "aspans" if workflow_id == "as-queue" else None
        )
        steps = [s for s in named(spans, "step charge") if s.parent.span_id == wf.context.span_id]
        assert steps and all(s.attributes["waymark.step.id"] == 1 for s in steps)
    attempts = [s.attributes["waymark.step.attempt"] for s in named(spans, "step charge")]
    assert sorted(attempts) == [1, 1, 2]  # the first run's two attempts, the second's one


# -- export and import carry everything ----------------------------------------------------------


def test_export_import_round_trip_keeps_everything(make_engine, db) -> None:
    engine: Engine = make_engine("porter", application_version="v1")
    tenants = engine.queue("tenants", partition_concurrency=1)
    tries = {"n": 0}

    @engine.step(name="flaky", max_attempts=2, interval_seconds=0.01)
    async def flaky() -> int:
        tries["n"] += 1
        if tries["n"] == 1:
            raise RuntimeError("first try")
        return 1

    @engine.workflow(name="porter")
    async def porter(ctx):
        await ctx.set_attributes_async({"customer": "42"})
        await ctx.write_stream_async("log", "a")
        await ctx.write_stream_async("log", "b")
        await ctx.close_stream_async("log")
        await flaky()
        raise ValueError("ends badly")

    engine.launch()
    handle = engine.start_workflow(porter, workflow_id="px", queue=tenants, partition_key="t7")
    with pytest.raises(WorkflowFailedError):
        handle.get_result(timeout=30)
    before = engine.get_workflow_status("px")
    data = engine.export_workflow("px")
    engine.delete_workflow("px")
    assert engine.get_workflow_status("px") is None
    assert engine.import_workflow(data) == "px"
    after = engine.get_workflow_status("px")
    assert after == before
    assert (after.attributes, after.partition_key) == ({"customer": "42"}, "t7")
    assert "ValueError: ends badly" in after.traceback
    assert list(engine.read_stream("px", "log", timeout=5)) == ["a", "b"]
    assert [a.error["message"] for a in engine.list_attempts("px", 5)] == ["first try"]
    assert [s.workflow_id for s in engine.list_workflows(attributes={"customer": "42"})] == ["px"]
    assert engine.export_workflow("px") == data
    # An export made before these columns and tables existed still imports.
    old = {**data, "workflows": [dict(item) for item in data["workflows"]]}
    for item in old["workflows"]:
        item.pop("attempts"), item.pop("streams")
        item["workflow"] = {
            k: v
            for k, v in item["workflow"].items()
            if k not in ("traceback", "waiting", "attributes", "partition_key")
        }
    engine.delete_workflow("px")
    assert engine.import_workflow(old) == "px"
    assert engine.get_workflow_status("px").attributes == {}
