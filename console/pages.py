"""Overview, queues, schedules and versions pages."""

from __future__ import annotations

import datetime as dt
import time

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console import charts, filters, fleet, stats
from console.http import HtmxHttpRequest
from console.views import bad_request


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@require_GET
@login_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    window = request.GET.get("window", "24h")
    if window not in filters.WINDOWS:
        return bad_request(
            request, f"window={window!r} is not a window; use one of {', '.join(filters.WINDOWS)}"
        )
    now = _now_ms()
    since = now - int(filters.WINDOWS[window].total_seconds() * 1000)
    counts = stats.status_counts(since)
    finished = sum(
        counts.get(s, 0)
        for s in ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
    )
    series = stats.series(since, now)
    live = stats.live_executors(now)
    return render(
        request,
        "console/overview.html",
        {
            "window": window,
            "windows": list(filters.WINDOWS),
            "counts": counts,
            "total": sum(counts.values()),
            "failure_rate": (counts.get("ERROR", 0) / finished * 100) if finished else None,
            "series": series,
            "throughput": charts.bars(series.completed, series.failed),
            "latency": charts.lines({"p50": series.p50, "p95": series.p95}),
            "stuck": stats.stuck(now, live),
            "executors": live,
            "now": now,
        },
    )


@require_GET
@login_required
def queues(request: HtmxHttpRequest) -> HttpResponse:
    internal = request.GET.get("internal", "")
    if internal not in ("", "1"):
        return bad_request(request, f"internal={internal[:40]!r} must be 1 or absent")
    now = _now_ms()
    return render(
        request,
        "console/queues.html",
        {
            "queues": stats.queues(stats.live_executors(now), now, internal=internal == "1"),
            "internal": internal == "1",
            "now": now,
        },
    )


@require_GET
@login_required
def schedules(request: HtmxHttpRequest) -> HttpResponse:
    now = _now_ms()
    live = stats.live_executors(now)
    return render(
        request,
        "console/schedules.html",
        {
            "schedules": stats.schedules(live, dt.datetime.now(dt.UTC)),
            "executors": live,
            "now": now,
        },
    )


@require_GET
@login_required
def versions(request: HtmxHttpRequest) -> HttpResponse:
    now = _now_ms()
    live = stats.live_executors(now)
    return render(
        request,
        "console/versions.html",
        {
            "versions": stats.versions(live),
            "executors": live,
            "live_versions": sorted({e.application_version for e in live}),
            "now": now,
        },
    )


@require_GET
@login_required
def executors(request: HtmxHttpRequest) -> HttpResponse:
    """The fleet: every recent executor with its role, Celery node, host, pid, version, last
    heartbeat and the workflows it runs; versions dispatched that no Celery worker runs."""
    now = _now_ms()
    live = stats.live_executors(now)
    return render(
        request,
        "console/executors.html",
        {
            "executors": fleet.executors(now, live),
            "stranded": sorted(fleet.stranded_versions(live)),
            "now": now,
        },
    )
