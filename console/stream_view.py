"""A workflow's streams in the console: listed in the header, each on a page of its own that
follows an open stream live (htmx polls the values after the last shown).

Values are shown by their serialization: portable JSON (every Waymark value) as stored; on a
DBOS source, whose streams keep each value's serialization, anything else is decoded like any
payload (console/payloads.py: DBOS Go's JSON decoded, pickles never unpickled)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Value
from django.db.models.expressions import RawSQL
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console import params, sources
from console.http import HtmxHttpRequest
from console.models import StreamItem, Workflow
from console.payloads import Payload
from console.views import bad_request
from engine import serialization
from engine.records import FINAL_STATUSES

PAGE = 500  # values per request
MAX_SEQ = 2_000_000_000


@require_GET
@login_required
def workflow_stream(request: HtmxHttpRequest, workflow_id: str) -> HttpResponse:
    """``?key=<stream>&from=<seq>``: the values from position ``from`` (default 0); while the
    stream is open and the workflow unfinished, the fragment polls for the next ones."""
    workflow = Workflow.objects.filter(workflow_uuid=workflow_id).only("status", "name").first()
    if workflow is None:
        raise Http404(f"No workflow with ID {workflow_id!r}: it may have been deleted.")
    try:
        key = params.text(request.GET, "key", 500)
        start = params.number(request.GET, "from", default=0, minimum=0, maximum=MAX_SEQ)
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    if not key:
        return bad_request(request, "key is missing: name the stream, e.g. ?key=progress")
    items = list(
        StreamItem.objects.filter(workflow_uuid=workflow_id, key=key, seq__gte=start)
        .annotate(fmt=value_format())
        .order_by("seq")
        .values("seq", "value", "closed", "fmt")[:PAGE]
    )
    closed = (
        any(i["closed"] for i in items)
        or StreamItem.objects.filter(workflow_uuid=workflow_id, key=key, closed=1).exists()
    )
    values = [{**i, "shown": shown(i["value"], i["fmt"])} for i in items if not i["closed"]]
    following_from = items[-1]["seq"] + 1 if items else start
    following = not closed and workflow.status not in FINAL_STATUSES
    context = {
        "workflow": workflow,
        "workflow_id": workflow_id,
        "key": key,
        "values": values,
        "next": following_from,
        "closed": closed,
        "following": following,
        "more": len(items) == PAGE,
    }
    if request.htmx and "from" in request.GET:
        return render(request, "console/_stream_values.html", context)
    return render(request, "console/stream.html", context)


def value_format() -> RawSQL | Value:
    """Each value's serialization: a DBOS source's streams view has the column; the engine
    writes every stream value as portable JSON."""
    if sources.current().is_dbos:
        return RawSQL("serialization", ())
    return Value(serialization.FORMAT)


def shown(value: str | None, fmt: str) -> str:
    if value is None or fmt == serialization.FORMAT:
        return value or ""
    return Payload(value, len(value), fmt).pretty()
