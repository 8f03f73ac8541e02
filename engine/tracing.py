"""OpenTelemetry tracing: a span per workflow execution and per step attempt.

Only the OpenTelemetry API is a dependency: with no SDK configured every call here is a no-op,
and the engine reads nothing more from the database. When a workflow starts, the caller's W3C
``traceparent`` is stored with it (``workflow_status.traceparent``); each execution of the
workflow (here, from a queue, recovered, resumed, woken from a sleep, on a Celery worker) is a
span in that trace, and each step attempt a child span of its execution. A recovery's span is
also linked to the trace context the workflow was started in (its first execution's parent).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("waymark")
_NO_SDK = (trace.NoOpTracerProvider, trace.ProxyTracerProvider)
# Asked once per step: the isinstance checks through ABCMeta cost about 5 us a call, a few
# percent of a trivial step. OpenTelemetry sets the global provider at most once, so once an
# SDK provider is there the answer stays yes; until then each call asks again (a new provider
# is seen at the next step) but recognises the no-op providers by exact type, without ABCMeta.
_sdk_seen = False


def enabled() -> bool:
    """Whether an SDK tracer provider is set (else spans are no-ops: skip the extra read)."""
    global _sdk_seen
    if _sdk_seen:
        return True
    provider = trace.get_tracer_provider()
    if type(provider) in _NO_SDK:
        return False
    _sdk_seen = not isinstance(provider, _NO_SDK)
    return _sdk_seen


def current_traceparent() -> str | None:
    """The active span's context as a W3C traceparent, or None outside any recorded span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    """The active trace's ID (32 hex digits), for log records; None outside a span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def _parent(traceparent: str | None) -> otel_context.Context | None:
    return _propagator.extract({"traceparent": traceparent}) if traceparent else None


@contextlib.contextmanager
def workflow_span(
    traceparent: str | None,
    *,
    workflow_id: str,
    name: str,
    queue: str | None,
    application_version: str | None,
    executor_id: str,
    recovery: bool,
) -> Iterator[trace.Span]:
    """One execution of a workflow, in the trace it was started in."""
    parent = _parent(traceparent)
    links = []
    if recovery and parent is not None:
        links.append(trace.Link(trace.get_current_span(parent).get_span_context()))
    attributes: dict[str, str | bool] = {
        "waymark.workflow.id": workflow_id,
        "waymark.workflow.name": name,
        "waymark.executor.id": executor_id,
        "waymark.recovery": recovery,
    }
    if queue is not None:
        attributes["waymark.queue"] = queue
    if application_version is not None:
        attributes["waymark.application.version"] = application_version
    with tracer.start_as_current_span(
        f"workflow {name}",
        context=parent,
        links=links,
        attributes=attributes,
        record_exception=False,  # a park or a shutdown unwinds it too: not an error
        set_status_on_exception=False,
    ) as span:
        yield span


def capture() -> otel_context.Context:
    """The active context, to parent spans made on another thread (``ctx.go`` steps)."""
    return otel_context.get_current()


@contextlib.contextmanager
def step_span(
    workflow_id: str,
    step_id: int,
    name: str,
    attempt: int,
    parent: otel_context.Context | None = None,
) -> Iterator[trace.Span]:
    """One attempt of a step, inside its workflow's execution span."""
    with tracer.start_as_current_span(
        f"step {name}",
        context=parent,
        attributes={
            "waymark.workflow.id": workflow_id,
            "waymark.step.id": step_id,
            "waymark.step.name": name,
            "waymark.step.attempt": attempt,
        },
    ) as span:
        yield span
