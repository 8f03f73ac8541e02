"""Overview, queues, schedules and versions pages."""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from console import actions, charts, filters, fleet, retention, sources, stats
from console.alerts import views as alert_views
from console.http import HtmxHttpRequest
from console.models import RetentionRun
from console.now import HIDDEN_QUEUES
from console.views import bad_request
from engine import scheduler


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
            "alerts": alert_views.firing(),
        },
    )


@require_GET
@login_required
def queues(request: HtmxHttpRequest) -> HttpResponse:
    internal = request.GET.get("internal", "")
    if internal not in ("", "1"):
        return bad_request(request, f"internal={internal[:40]!r} must be 1 or absent")
    now = _now_ms()
    shown = stats.queues(stats.live_executors(now), now, internal=internal == "1")
    # Pauses and changed limits live in the engine's queue_settings: read through the source's
    # client. A DBOS source has neither (its limits come from its own queues table, in stats).
    controlled = (
        {}
        if sources.current().is_dbos
        else {q.name: q for q in actions.current_client().list_queues()}
    )
    listed = {q.name for q in shown}
    shown += [
        stats.QueueInfo(name)
        for name in controlled
        if name not in listed and (internal == "1" or name not in HIDDEN_QUEUES)
    ]
    shown.sort(key=lambda q: q.name)
    for q in shown:
        control = controlled.get(q.name)
        q.paused = bool(control and control.paused)
        if control is not None:
            q.limits = {
                "concurrency": control.concurrency,
                "worker_concurrency": control.worker_concurrency,
                "rate_limit": control.rate_limit,
            }
    return render(
        request,
        "console/queues.html",
        {
            "queues": shown,
            "internal": internal == "1",
            "hidden": sorted(HIDDEN_QUEUES),
            "now": now,
        },
    )


@require_GET
@login_required
def schedules(request: HtmxHttpRequest) -> HttpResponse:
    """Every schedule, its times shown in ``?tz=`` (an IANA name; default UTC)."""
    tz_name = request.GET.get("tz", "").strip() or "UTC"
    try:
        zone = scheduler.zone(tz_name[:64], "shown")
    except ValueError as exc:
        return bad_request(request, f"tz: {exc}")
    now = _now_ms()
    live = stats.live_executors(now)
    with timezone.override(zone):  # the template's dates are shown in the zone asked for
        return render(
            request,
            "console/schedules.html",
            {
                "schedules": stats.schedules(live, dt.datetime.now(dt.UTC)),
                "executors": live,
                "now": now,
                "tz": tz_name,
                "managed_source": not sources.current().is_dbos,
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
def retention_page(request: HtmxHttpRequest) -> HttpResponse:
    """The retention policy runworker applies, its last passes and what they deleted."""
    try:
        rules, problem = retention.policy(), ""
    except ValueError as exc:
        rules, problem = None, str(exc)
    return render(
        request,
        "console/retention.html",
        {
            "policy": rules,
            "problem": problem,
            "interval": settings.WAYMARK_RETENTION_INTERVAL,
            "runs": list(RetentionRun.objects.all()[:20]),
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
