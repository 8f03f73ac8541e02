"""Workflow pages: the list, a workflow's detail (header, timeline, steps), one step.

Thin typed views: parse and validate the query string (a bad value is a 400 page saying why),
read through the read-only models, render. Polled fragments answer 204 when nothing changed
and 286 (stop polling) once a workflow is finished.
"""

from __future__ import annotations

import datetime as dt
import time

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.http import HTMX_STOP_POLLING

from console import actions, audit_trail, filters, params, timeline
from console.http import HtmxHttpRequest
from console.models import AuditRecord, Event, Notification, Step, Workflow
from console.payloads import FULL_CHARS, PREVIEW_CHARS, Payload, with_heads
from engine.records import FINAL_STATUSES

STEP_WINDOW = 100  # a long workflow shows its first and last this-many steps, then "load more"
SIDE_LIST = 50  # events, messages and children shown per page on the detail page
WORKFLOW_PAYLOADS = ("inputs", "output", "error")
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
    "recovery_attempts",
    "parent_workflow_id",
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bad_request(request: HtmxHttpRequest, reason: str) -> HttpResponse:
    return render(request, "400.html", {"reason": reason}, status=400)


def _workflow_or_404(workflow_id: str) -> Workflow:
    """The workflow with the start of its payloads (never a whole multi-megabyte input)."""
    qs = with_heads(Workflow.objects.all(), WORKFLOW_PAYLOADS, FULL_CHARS)
    try:
        return qs.get(workflow_uuid=workflow_id)
    except Workflow.DoesNotExist:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")


def _with_payloads(steps: list[Step]) -> list[Step]:
    for step in steps:
        step.out = Payload.of(step, "output")  # type: ignore[attr-defined]
        step.err = Payload.of(step, "error")  # type: ignore[attr-defined]
    return steps


@require_GET
@login_required
def workflow_list(request: HtmxHttpRequest) -> HttpResponse:
    try:
        f = filters.parse(request.GET)
        cursor = filters.parse_cursor(request.GET.get("cursor", ""))
    except filters.BadFilterError as exc:
        return bad_request(request, str(exc))
    qs = filters.apply(Workflow.objects.only(*LIST_FIELDS), f, dt.datetime.now(dt.UTC))
    rows, next_cursor = filters.page(qs, cursor)
    fingerprint = f"{len(rows)}-{max((r.updated_at for r in rows), default=0)}"
    if request.htmx and request.GET.get("v") == fingerprint:
        return HttpResponse(status=204)  # polled and unchanged: nothing to swap
    count, capped = filters.capped_count(qs) if not request.htmx else (0, False)
    context = {
        "rows": rows,
        "filter": f,
        "next_cursor": next_cursor,
        "cursor": cursor,
        "count": count,
        "capped": capped,
        "fingerprint": fingerprint,
        "statuses": [
            s
            for s in (
                "PENDING",
                "ENQUEUED",
                "DELAYED",
                "SUCCESS",
                "ERROR",
                "CANCELLED",
                "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
            )
        ],
        "windows": list(filters.WINDOWS),
        "now": now_ms(),
    }
    template = "console/_workflow_rows.html" if request.htmx else "console/workflow_list.html"
    return render(request, template, context)


def _steps_window(workflow_id: str, start: int | None) -> tuple[list[Step], int, bool]:
    """First and last STEP_WINDOW steps (or a page from ``start``), the total, and whether
    steps were left out in the middle."""
    steps = with_heads(
        Step.objects.filter(workflow_uuid=workflow_id), STEP_PAYLOADS, STEP_HEAD_CHARS
    )
    total = steps.count()
    if start is not None:
        page = steps.filter(function_id__gte=start).order_by("function_id")[:STEP_WINDOW]
        return _with_payloads(list(page)), total, False
    if total <= 2 * STEP_WINDOW:
        return _with_payloads(list(steps.order_by("function_id"))), total, False
    head = list(steps.order_by("function_id")[:STEP_WINDOW])
    tail = list(steps.order_by("-function_id")[:STEP_WINDOW])[::-1]
    return _with_payloads(head + tail), total, True


def _detail_context(workflow: Workflow) -> dict[str, object]:
    now = now_ms()
    steps, total, gap = _steps_window(workflow.workflow_uuid, None)
    head = steps[:STEP_WINDOW] if gap else steps
    return {
        "workflow": workflow,
        "input": Payload.of(workflow, "inputs"),
        "output": Payload.of(workflow, "output"),
        "error": Payload.of(workflow, "error"),
        "steps": head,
        "tail_steps": steps[STEP_WINDOW:] if gap else [],
        "steps_total": total,
        "steps_gap": gap,
        "next_step": STEP_WINDOW + 1,
        "timeline": timeline.build(workflow, steps, now),
        "finished": workflow.status in FINAL_STATUSES,
        "now": now,
    }


@require_GET
@login_required
def workflow_detail(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    workflow = _workflow_or_404(workflow_id)
    if request.htmx and request.GET.get("fragment") == "live":
        if request.GET.get("v") == str(workflow.updated_at):
            # Unchanged since the last poll; if it is finished, stop polling too.
            finished = workflow.status in FINAL_STATUSES
            return HttpResponse(status=HTMX_STOP_POLLING if finished else 204)
        context = _detail_context(workflow)
        response = render(request, "console/_live.html", context)
        if context["finished"]:
            response.status_code = HTMX_STOP_POLLING
        return response
    context = _detail_context(workflow)
    children = Workflow.objects.filter(parent_workflow_id=workflow_id)
    context["children"] = list(children.only(*LIST_FIELDS).order_by("created_at")[:SIDE_LIST])
    context["children_count"] = (
        children.count() if len(context["children"]) == SIDE_LIST else len(context["children"])
    )
    context["events"], context["events_next"] = _events_page(workflow_id, "")
    context["waiting_messages"], context["messages_next"] = _messages_page(workflow_id, 0)
    context["cancellable"], context["resumable"] = actions.CANCELLABLE, actions.RESUMABLE
    user = request.user
    context["audit_records"] = (
        audit_trail.rows(AuditRecord.objects.filter(targets__workflow_id=workflow_id)[:20])
        if user.has_perm("console.operate_workflows") or user.has_perm("console.view_audit")
        else None
    )
    return render(request, "console/workflow_detail.html", context)


@require_GET
@login_required
def workflow_steps(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """More steps of a long workflow (the "load more" of the steps table)."""
    _workflow_or_404(workflow_id)
    try:
        start = params.number(request.GET, "from", default=1)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    steps, total, _ = _steps_window(workflow_id, start)
    return render(
        request,
        "console/_steps_page.html",
        {
            "steps": steps,
            "workflow_id": workflow_id,
            "total": total,
            "next_step": start + STEP_WINDOW if start + STEP_WINDOW <= total else None,
        },
    )


@require_GET
@login_required
def step_detail(request: HtmxHttpRequest, workflow_id: str, step_id: int) -> HttpResponse:
    workflow = _workflow_or_404(workflow_id)
    steps = with_heads(Step.objects.filter(workflow_uuid=workflow_id), STEP_PAYLOADS, FULL_CHARS)
    try:
        step = _with_payloads([steps.get(function_id=step_id)])[0]
    except Step.DoesNotExist:
        raise Http404(f"Workflow {workflow_id!r} has no step {step_id}.")
    template = "console/_step_payload.html" if request.htmx else "console/step_detail.html"
    return render(request, template, {"workflow": workflow, "step": step})


def _events_page(workflow_id: str, after_key: str) -> tuple[list[Event], str]:
    """Up to SIDE_LIST events after ``after_key`` (by key), values as previews."""
    qs = with_heads(Event.objects.filter(workflow_uuid=workflow_id), ("value",), STEP_HEAD_CHARS)
    if after_key:
        qs = qs.filter(key__gt=after_key)
    found = list(qs.order_by("key")[: SIDE_LIST + 1])
    for event in found:
        event.payload = Payload.of(event, "value")  # type: ignore[attr-defined]
    more = len(found) > SIDE_LIST
    return found[:SIDE_LIST], found[SIDE_LIST - 1].key if more else ""


def _messages_page(workflow_id: str, after_seq: int) -> tuple[list[Notification], int]:
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


@require_GET
@login_required
def workflow_events(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """The next page of a workflow's events (the "load more" of the events panel)."""
    _workflow_or_404(workflow_id)
    try:
        after = params.text(request.GET, "after", limit=1000)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    events, next_key = _events_page(workflow_id, after)
    return render(
        request,
        "console/_events.html",
        {"events": events, "events_next": next_key, "workflow_id": workflow_id},
    )


@require_GET
@login_required
def workflow_messages(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """The next page of a workflow's undelivered messages."""
    _workflow_or_404(workflow_id)
    try:
        after = params.number(request.GET, "after", default=0, minimum=0)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    found, next_seq = _messages_page(workflow_id, after)
    return render(
        request,
        "console/_messages.html",
        {"waiting_messages": found, "messages_next": next_seq, "workflow_id": workflow_id},
    )


def _download(text: str | None, filename: str) -> HttpResponse:
    if text is None:
        raise Http404("Nothing recorded here.")
    response = HttpResponse(text, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@login_required
def workflow_payload(request: HtmxHttpRequest, workflow_id: str, part: str) -> HttpResponse:
    """A workflow's whole input, output or error, as a download (pages show only the start)."""
    column = {"input": "inputs", "output": "output", "error": "error"}.get(part)
    if column is None:
        raise Http404("Payloads are input.json, output.json and error.json.")
    found = Workflow.objects.filter(workflow_uuid=workflow_id).values_list(column, flat=True)
    if not found:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")
    return _download(found[0], f"workflow-{part}.json")


@require_GET
@login_required
def step_payload(
    request: HtmxHttpRequest, workflow_id: str, step_id: int, part: str
) -> HttpResponse:
    """A step's whole output or error, as a download."""
    if part not in STEP_PAYLOADS:
        raise Http404("Step payloads are output.json and error.json.")
    found = Step.objects.filter(workflow_uuid=workflow_id, function_id=step_id).values_list(
        part, flat=True
    )
    if not found:
        raise Http404(f"Workflow {workflow_id!r} has no step {step_id}.")
    return _download(found[0], f"step-{step_id}-{part}.json")
