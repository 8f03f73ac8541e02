"""A workflow's detail page as one live view: what it shows, and the fingerprint that says
whether anything on it changed since the last poll.

Everything on the page (header, "now" line, actions, timeline, steps, events, messages,
children, forks, audit strip) is built here in one context and rendered as one fragment, so
after an action nothing on it can contradict the new state. The poll first reads only the
fingerprint (one small query on the system tables, one on the audit trail) and answers 204
when it is unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Count, Max

from console import attempts, audit_trail, event_history, now, sources, stats, timeline
from console.models import AuditRecord, Event, Notification, Step, StreamItem, Workflow
from console.payloads import FULL_CHARS, PREVIEW_CHARS, Payload, with_heads
from engine import operations as names
from engine.records import FINAL_STATUSES

STEP_WINDOW = 100  # a long workflow shows its first and last this-many steps, then "load more"
SIDE_LIST = 50  # events, messages, children and forks shown per page
COUNT_CAP = 1000  # children and events counted no further than this in the fingerprint
WORKFLOW_PAYLOADS = ("inputs", "output", "error", "traceback")
STEP_PAYLOADS = ("output", "error")
# Enough of a step's output for its one-line preview and the timeline's sleep wake-up time.
STEP_HEAD_CHARS = 4 * PREVIEW_CHARS
LIST_FIELDS = (
    "workflow_uuid",
    "status",
    "name",
    "queue_name",
    "application_version",
    "executor_id",
    "created_at",
    "updated_at",
    "completed_at",
    "started_at_epoch_ms",
    "delay_until_epoch_ms",
    "priority",
    "recovery_attempts",
    "parent_workflow_id",
    "waiting",  # the "now" column reads it (deferred, it would cost a query per row)
    "debounce_key",  # so does a debounced workflow's line
)
# Steps whose output is a time (epoch ms): shown as one, never as a raw number.
TIMED = {
    names.SLEEP: "wakes at",
    names.RECV_TIMEOUT: "times out at",
    names.GET_EVENT_TIMEOUT: "times out at",
}


def workflow(workflow_id: str) -> Workflow | None:
    """The workflow with the start of its payloads (never a whole multi-megabyte input)."""
    qs = with_heads(Workflow.objects.all(), WORKFLOW_PAYLOADS, FULL_CHARS)
    return qs.filter(workflow_uuid=workflow_id).first()


def with_payloads(steps: list[Step], now_ms: int) -> list[Step]:
    for step in steps:
        step.out = Payload.of(step, "output")  # type: ignore[attr-defined]
        step.err = Payload.of(step, "error")  # type: ignore[attr-defined]
        step.note = ""  # type: ignore[attr-defined]
        if step.function_name in TIMED and step.out.head:  # type: ignore[attr-defined]
            try:
                when = int(json.loads(step.out.head))  # type: ignore[attr-defined]
                step.note = f"{TIMED[step.function_name]} {now.at(when, now_ms)}"  # type: ignore[attr-defined]
            except (TypeError, ValueError):
                pass
    return steps


def steps_window(workflow_id: str, start: int | None, now_ms: int) -> tuple[list[Step], int, bool]:
    """First and last STEP_WINDOW steps (or a page from ``start``), the total, and whether
    steps were left out in the middle."""
    steps = with_heads(
        Step.objects.filter(workflow_uuid=workflow_id), STEP_PAYLOADS, STEP_HEAD_CHARS
    )
    total = steps.count()
    if start is not None:
        page = steps.filter(function_id__gte=start).order_by("function_id")[:STEP_WINDOW]
        return with_payloads(list(page), now_ms), total, False
    if total <= 2 * STEP_WINDOW:
        return with_payloads(list(steps.order_by("function_id")), now_ms), total, False
    head = list(steps.order_by("function_id")[:STEP_WINDOW])
    tail = list(steps.order_by("-function_id")[:STEP_WINDOW])[::-1]
    return with_payloads(head + tail, now_ms), total, True


def copied_steps(fork: Workflow, steps: list[Step]) -> set[int]:
    """Which of a fork's steps were copied from its source rather than run by the fork.

    The engine copies a fork's first steps verbatim, timestamps included, in the transaction
    that creates it; a step the fork runs itself gets the times it ran at, later. So a step is
    copied exactly when the source has the same step, name and start and completion times to
    the millisecond (a fork of a fork compares with its own source, whose copies match too).
    """
    if not fork.forked_from or not steps:
        return set()
    source = Step.objects.filter(
        workflow_uuid=fork.forked_from, function_id__in=[s.function_id for s in steps]
    ).values_list("function_id", "function_name", "started_at_epoch_ms", "completed_at_epoch_ms")
    theirs = {row[0]: row[1:] for row in source}
    return {
        s.function_id
        for s in steps
        if theirs.get(s.function_id)
        == (s.function_name, s.started_at_epoch_ms, s.completed_at_epoch_ms)
    }


def forks(source: Workflow) -> list[Workflow]:
    """Workflows forked from ``source``, oldest first.

    A fork is always created after its source, so the scan starts at the source's creation
    time on the (created_at) index; the engine has no index on forked_from yet.
    """
    return list(
        Workflow.objects.filter(forked_from=source.workflow_uuid, created_at__gte=source.created_at)
        .only(*LIST_FIELDS)
        .order_by("created_at")[:SIDE_LIST]
    )


def events_page(workflow_id: str, after_key: str) -> tuple[list[Event], str]:
    """Up to SIDE_LIST events after ``after_key`` (by key), values as previews."""
    qs = with_heads(Event.objects.filter(workflow_uuid=workflow_id), ("value",), STEP_HEAD_CHARS)
    if after_key:
        qs = qs.filter(key__gt=after_key)
    found = list(qs.order_by("key")[: SIDE_LIST + 1])
    for event in found:
        event.payload = Payload.of(event, "value")  # type: ignore[attr-defined]
    more = len(found) > SIDE_LIST
    return found[:SIDE_LIST], found[SIDE_LIST - 1].key if more else ""


def messages_page(workflow_id: str, after_seq: int) -> tuple[list[Notification], int]:
    """Up to SIDE_LIST undelivered messages after ``after_seq``, oldest first."""
    qs = with_heads(
        Notification.objects.filter(destination_uuid=workflow_id, seq__gt=after_seq),
        ("message",),
        STEP_HEAD_CHARS,
    )
    found = list(qs.order_by("seq")[: SIDE_LIST + 1])
    for message in found:
        message.payload = Payload.of(message, "message")  # type: ignore[attr-defined]
    more = len(found) > SIDE_LIST
    return found[:SIDE_LIST], (found[SIDE_LIST - 1].seq or 0) if more else 0


def fingerprint(workflow_id: str, with_audit: bool) -> tuple[str, bool] | None:
    """What changes when anything on the page changes: the row's status and updated_at, the
    step count and last step, the event, message and child counts (capped), and the newest
    audit record naming it; and whether the workflow is finished. None when it does not exist.
    Read before the page's contents, so a change landing meanwhile shows at the next poll."""
    tables = {
        m.__name__: connections[sources.alias()].ops.quote_name(m._meta.db_table)
        for m in (Workflow, Step, Event, Notification)
    }
    sql = (
        f"SELECT w.status, w.updated_at,"
        f" (SELECT count(*) FROM {tables['Step']} WHERE workflow_uuid = %s),"
        f" (SELECT max(function_id) FROM {tables['Step']} WHERE workflow_uuid = %s),"
        f" (SELECT count(*) FROM (SELECT 1 FROM {tables['Event']} WHERE workflow_uuid = %s"
        f"  LIMIT {COUNT_CAP}) e),"
        f" (SELECT count(*) FROM (SELECT 1 FROM {tables['Notification']}"
        f"  WHERE destination_uuid = %s LIMIT {COUNT_CAP}) n),"
        f" (SELECT count(*) FROM (SELECT 1 FROM {tables['Workflow']}"
        f"  WHERE parent_workflow_id = %s LIMIT {COUNT_CAP}) c)"
        f" FROM {tables['Workflow']} w WHERE w.workflow_uuid = %s"
    )
    with connections[sources.alias()].cursor() as cur:
        cur.execute(sql, [workflow_id] * 6)
        row = cur.fetchone()
    if row is None:
        return None
    parts = [str(v) for v in row]
    if with_audit:
        newest = (
            AuditRecord.objects.filter(targets__workflow_id=workflow_id)
            .order_by("-id")
            .values_list("id", "completed_at")
            .first()
        )
        parts.append(f"{newest[0]}{'' if newest[1] else 'i'}" if newest else "-")
    return "-".join(parts), row[0] in FINAL_STATUSES


def sees_audit(user: Any) -> bool:
    return bool(user.has_perm("console.operate_workflows") or user.has_perm("console.view_audit"))


def trace_url(w: Workflow) -> str | None:
    """The workflow's trace in the tracing UI (WAYMARK_TRACE_URL, a template with
    ``{trace_id}``), when it was started inside a trace."""
    template = settings.WAYMARK_TRACE_URL
    parts = (w.traceparent or "").split("-")
    if not template or len(parts) != 4 or len(parts[1]) != 32:
        return None
    trace_id = parts[1].lower()
    if not all(c in "0123456789abcdef" for c in trace_id):
        return None
    return str(template).replace("{trace_id}", trace_id)


def context(w: Workflow, user: Any, now_ms: int, print_: str) -> dict[str, Any]:
    """Everything the live view shows; ``print_`` is its fingerprint, read before ``w``."""
    with_audit = sees_audit(user)
    steps, total, gap = steps_window(w.workflow_uuid, None, now_ms)
    live = now.Live.of(stats.live_executors(now_ms))
    children = Workflow.objects.filter(parent_workflow_id=w.workflow_uuid)
    shown_children = list(children.only(*LIST_FIELDS).order_by("created_at")[:SIDE_LIST])
    events, events_next = events_page(w.workflow_uuid, "")
    waiting, messages_next = messages_page(w.workflow_uuid, 0)
    return {
        "workflow": w,
        "input": Payload.of(w, "inputs"),
        "output": Payload.of(w, "output"),
        "error": Payload.of(w, "error"),
        "traceback": Payload.of(w, "traceback"),
        "now_line": now.for_workflows([w], live, now_ms).get(w.workflow_uuid),
        "queue": now.shown_queue(w.queue_name),
        "steps": steps[:STEP_WINDOW] if gap else steps,
        "tail_steps": steps[STEP_WINDOW:] if gap else [],
        "steps_total": total,
        "steps_gap": gap,
        "next_step": STEP_WINDOW + 1,
        "copied": copied_steps(w, steps),
        "timeline": timeline.build(
            w, steps, now_ms, attempts.by_step(w.workflow_uuid, [s.function_id for s in steps])
        ),
        "finished": w.status in FINAL_STATUSES,
        "children": shown_children,
        "children_count": children.count()
        if len(shown_children) == SIDE_LIST
        else len(shown_children),
        "forks": forks(w),
        "trace_url": trace_url(w),
        "events": events,
        "events_next": events_next,
        "event_history": event_history.of(w.workflow_uuid),
        "waiting_messages": waiting,
        "streams": streams_of(w.workflow_uuid),
        "messages_next": messages_next,
        "audit_records": audit_trail.rows(
            AuditRecord.objects.filter(targets__workflow_id=w.workflow_uuid)[:20]
        )
        if with_audit
        else None,
        "fingerprint": print_,
        "now": now_ms,
    }


@dataclass(frozen=True)
class StreamSummary:
    key: str
    items: int
    closed: bool


def streams_of(workflow_id: str) -> list[StreamSummary]:
    rows = (
        StreamItem.objects.filter(workflow_uuid=workflow_id)
        .values("key")
        .annotate(n=Count("seq"), closed=Max("closed"))
        .order_by("key")[:100]
    )
    return [
        StreamSummary(r["key"], r["n"] - (1 if r["closed"] else 0), bool(r["closed"])) for r in rows
    ]
