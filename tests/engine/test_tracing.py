"""Tracing with the OpenTelemetry SDK's in-memory exporter: a span per execution and per step
attempt, in the caller's trace, through a queue, a recovery and a Client start."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from engine import Client, Engine
from tests.engine.test_recovery import rewind
from tests.support import wait_until

_exporter = InMemorySpanExporter()
_recording = threading.Event()


class _WhileRecording(SpanProcessor):
    """Exports only while a tracing test runs (the provider is process-wide and set once)."""

    def __init__(self) -> None:
        self._inner = SimpleSpanProcessor(_exporter)

    def on_end(self, span: ReadableSpan) -> None:
        if _recording.is_set():
            self._inner.on_end(span)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(_WhileRecording())
        trace.set_tracer_provider(provider)
    _exporter.clear()
    _recording.set()
    yield _exporter
    _recording.clear()
    _exporter.clear()


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def app(engine: Engine, fail_first: dict[str, int]):
    @engine.step(name="charge", max_attempts=2, interval_seconds=0.01)
    def charge(x: int) -> int:
        fail_first["n"] += 1
        if fail_first["n"] == 1:
            raise RuntimeError("flaky")
        return x * 2

    @engine.workflow(name="order")
    def order(ctx, x):
        return charge(x)

    return order


def test_queued_workflow_continues_the_callers_trace(make_engine, spans) -> None:
    engine: Engine = make_engine("t", application_version="v1")
    order = app(engine, {"n": 0})
    queue = engine.queue("orders")
    engine.launch()
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        handle = engine.start_workflow(order, 4, workflow_id="o1", queue=queue)
    assert handle.get_result(timeout=30) == 8
    wait_until(lambda: len(named(spans, "workflow ")) == 1, what="the workflow span")
    (wf,) = named(spans, "workflow order")
    ctx = caller.get_span_context()
    assert wf.context.trace_id == ctx.trace_id and wf.parent.span_id == ctx.span_id
    assert wf.attributes["waymark.workflow.id"] == "o1"
    assert wf.attributes["waymark.workflow.name"] == "order"
    assert wf.attributes["waymark.queue"] == "orders"
    assert wf.attributes["waymark.application.version"] == "v1"
    assert wf.attributes["waymark.executor.id"] == engine.executor_id
    attempts = named(spans, "step charge")
    assert [s.attributes["waymark.step.attempt"] for s in attempts] == [1, 2]
    for s in attempts:
        assert s.parent.span_id == wf.context.span_id and s.context.trace_id == ctx.trace_id
        assert s.attributes["waymark.step.id"] == 1
        assert s.attributes["waymark.step.name"] == "charge"


def test_recovery_is_in_the_same_trace_and_linked(make_engine, db, spans) -> None:
    first: Engine = make_engine("t", application_version="v1")
    order = app(first, {"n": 1})
    first.launch()
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        first.start_workflow(order, 1, workflow_id="o2").get_result(timeout=30)
    first.shutdown()
    rewind(db, "o2", keep_steps=0)
    spans.clear()
    second: Engine = make_engine("t", application_version="v1")
    app(second, {"n": 1})
    second.launch()
    assert second.retrieve_workflow("o2").get_result(timeout=30) == 2
    wait_until(lambda: len(named(spans, "workflow ")) == 1, what="the recovery span")
    (wf,) = named(spans, "workflow order")
    ctx = caller.get_span_context()
    assert wf.context.trace_id == ctx.trace_id
    assert wf.attributes["waymark.recovery"] is True
    assert [link.context.span_id for link in wf.links] == [ctx.span_id]


def test_client_start_stores_the_traceparent(db, spans) -> None:
    tracer = trace.get_tracer("test")
    with (
        Client(db.url, schema=db.schema) as client,
        tracer.start_as_current_span("caller") as caller,
    ):
        client.start_workflow("order", 1, queue="orders", workflow_id="o3")
    ((stored,),) = db.raw("SELECT traceparent FROM workflow_status WHERE workflow_uuid = 'o3'")
    ctx = caller.get_span_context()
    assert stored.startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    with Client(db.url, schema=db.schema) as client:
        client.start_workflow("order", 1, queue="orders", workflow_id="o4")  # no caller span
    assert db.raw("SELECT traceparent FROM workflow_status WHERE workflow_uuid = 'o4'") == [(None,)]
