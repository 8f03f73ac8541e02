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
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.http import HTMX_STOP_POLLING

from console import actions, attempts, detail, filters, params, stats
from console import now as now_line
from console.http import HtmxHttpRequest
from console.models import Step, Workflow
from console.payloads import FULL_CHARS, with_heads
from engine.records import Status


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bad_request(request: HtmxHttpRequest, reason: str) -> HttpResponse:
    return render(request, "400.html", {"reason": reason}, status=400)


def _workflow_or_404(workflow_id: str) -> Workflow:
    found = detail.workflow(workflow_id)
    if found is None:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")
    return found


def _list_url(f: filters.WorkflowFilter, **extra: str) -> str:
    query = f.query_string(**extra)
    return reverse("workflow_list") + (f"?{query}" if query else "")


@require_GET
@login_required
def workflow_list(request: HtmxHttpRequest) -> HttpResponse:
    try:
        f = filters.parse(request.GET)
        cursor = filters.parse_cursor(request.GET.get("cursor", ""))
        back = filters.parse_cursor(request.GET.get("back", ""), "back")
    except filters.BadFilterError as exc:
        return bad_request(request, str(exc))
    qs = filters.apply(Workflow.objects.only(*detail.LIST_FIELDS), f, dt.datetime.now(dt.UTC))
    found = filters.page(qs, cursor, back)
    rows = found.rows
    fingerprint = f"{len(rows)}-{max((r.updated_at for r in rows), default=0)}"
    if request.htmx and request.GET.get("v") == fingerprint:
        return HttpResponse(status=204)  # polled and unchanged: nothing to swap
    now = now_ms()
    lines = now_line.for_workflows(
        rows, now_line.Live.of(stats.live_executors(now)), now, now_line.LIST_AHEAD_CAP
    )
    for row in rows:
        row.now = lines.get(row.workflow_uuid)
        row.shown_queue = now_line.shown_queue(row.queue_name)
    count, capped = filters.capped_count(qs) if not request.htmx else (0, False)
    here = {"cursor": request.GET.get("cursor", ""), "back": request.GET.get("back", "")}
    context = {
        "rows": rows,
        "filter": f,
        "cursor": cursor or back,
        "next_cursor": found.next_cursor,
        "prev_cursor": found.prev_cursor,
        "next_url": _list_url(f, cursor=found.next_cursor) if found.next_cursor else "",
        "prev_url": _list_url(f, back=found.prev_cursor) if found.prev_cursor else "",
        "poll_url": _list_url(f, **here, v=fingerprint),
        "count": count,
        "capped": capped,
        "fingerprint": fingerprint,
        "statuses": list(Status.__members__),
        "windows": list(filters.WINDOWS),
        "names": sorted({r.name for r in rows})[:10],
        "now": now,
    }
    template = "console/_workflow_rows.html" if request.htmx else "console/workflow_list.html"
    return render(request, template, context)


@require_GET
@login_required
def workflow_detail(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """The detail page, and its live fragment (``?fragment=live&v=<fingerprint>``): 204 while
    nothing on it changed, the whole fragment when something did, 286 (stop polling) once the
    workflow is finished."""
    polled = request.htmx and request.GET.get("fragment") == "live"
    found = detail.fingerprint(workflow_id, detail.sees_audit(request.user))
    if found is None:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")
    print_, finished = found
    if polled and request.GET.get("v") == print_:
        return HttpResponse(status=HTMX_STOP_POLLING if finished else 204)
    context = detail.context(_workflow_or_404(workflow_id), request.user, now_ms(), print_)
    context["cancellable"], context["resumable"] = actions.CANCELLABLE, actions.RESUMABLE
    if request.htmx and request.GET.get("fragment") == "summary":  # a child, expanded in place
        return render(request, "console/_summary.html", context)
    if not polled:
        return render(request, "console/workflow_detail.html", context)
    response = render(request, "console/_live.html", context)
    if context["finished"]:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_GET
@login_required
def workflow_steps(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """More steps of a long workflow (the "load more" of the steps table)."""
    _workflow_or_404(workflow_id)
    try:
        start = params.number(request.GET, "from", default=1)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    steps, total, _ = detail.steps_window(workflow_id, start, now_ms())
    return render(
        request,
        "console/_steps_page.html",
        {
            "steps": steps,
            "workflow_id": workflow_id,
            "total": total,
            "next_step": start + detail.STEP_WINDOW
            if start + detail.STEP_WINDOW <= total
            else None,
        },
    )


@require_GET
@login_required
def step_detail(request: HtmxHttpRequest, workflow_id: str, step_id: int) -> HttpResponse:
    workflow = _workflow_or_404(workflow_id)
    steps = with_heads(
        Step.objects.filter(workflow_uuid=workflow_id), detail.STEP_PAYLOADS, FULL_CHARS
    )
    try:
        step = detail.with_payloads([steps.get(function_id=step_id)], now_ms())[0]
    except Step.DoesNotExist:
        raise Http404(f"Workflow {workflow_id!r} has no step {step_id}.")
    if request.htmx:
        return render(request, "console/_step_payload.html", {"workflow": workflow, "step": step})
    tried, tried_total = attempts.for_step(workflow_id, step_id)
    context = {
        "workflow": workflow,
        "step": step,
        "attempts": tried,
        "attempts_total": tried_total,
        # A failed step's traceback is its last failed attempt's.
        "step_traceback": tried[-1].traceback if tried and step.error_head else None,
    }
    return render(request, "console/step_detail.html", context)


@require_GET
@login_required
def workflow_events(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """The next page of a workflow's events (the "load more" of the events panel)."""
    _workflow_or_404(workflow_id)
    try:
        after = params.text(request.GET, "after", limit=1000)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    events, next_key = detail.events_page(workflow_id, after)
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
    found, next_seq = detail.messages_page(workflow_id, after)
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
    if part not in detail.STEP_PAYLOADS:
        raise Http404("Step payloads are output.json and error.json.")
    found = Step.objects.filter(workflow_uuid=workflow_id, function_id=step_id).values_list(
        part, flat=True
    )
    if not found:
        raise Http404(f"Workflow {workflow_id!r} has no step {step_id}.")
    return _download(found[0], f"step-{step_id}-{part}.json")
