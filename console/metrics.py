"""``/metrics``: the system tables as Prometheus gauges, for a Prometheus that scrapes the console.

A custom Collector reads them fresh on every scrape (console/gauges.py: bounded queries), into
a registry made for that one request: nothing is kept between scrapes, so two scrapes (or two
console processes) can never disagree about state they share. The worker-side counters and
histograms (``waymark_workflows_started_total`` ...) belong to the processes that run
workflows and are not exported here.

Who may scrape: ``Authorization: Bearer <WAYMARK_METRICS_TOKEN>`` (compared in constant time),
or a signed-in user with ``console.view_metrics`` (the admin role). No or a wrong token: 401;
signed in without the permission: 403.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from console import gauges

_CAPPED = f"Counted up to {gauges.CAP:,}: a value at the cap means at least that many."

# name -> (help, labels). The docs' dashboard and alert rules are tested against these names.
GAUGES: dict[str, tuple[str, list[str]]] = {
    "waymark_workflows": (
        "Unfinished workflows now, by status (PENDING, ENQUEUED, DELAYED). PENDING and DELAYED "
        f"are {_CAPPED[0].lower() + _CAPPED[1:]} ENQUEUED is the sum of the queues' counts "
        "(waymark_queue_enqueued), each capped so.",
        ["status"],
    ),
    "waymark_workflows_recent": (
        "Workflows created in the last `window` (1h, 24h) whose status is now final (SUCCESS, "
        f"ERROR, CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED). {_CAPPED}",
        ["status", "window"],
    ),
    "waymark_queue_enqueued": (f"Workflows waiting on the queue (ENQUEUED). {_CAPPED}", ["queue"]),
    "waymark_queue_running": (
        f"Workflows taken from the queue and running (PENDING). {_CAPPED}",
        ["queue"],
    ),
    "waymark_queue_delayed": (
        f"Workflows on the queue waiting for their delay (DELAYED). {_CAPPED}",
        ["queue"],
    ),
    "waymark_queue_oldest_enqueued_age_seconds": (
        "Seconds since the oldest ENQUEUED workflow of the queue was created (0: none waiting).",
        ["queue"],
    ),
    "waymark_workflows_stuck": (
        f"PENDING workflows whose executor has no live heartbeat. {_CAPPED}",
        [],
    ),
    "waymark_workflows_stranded": (
        "PENDING or ENQUEUED workflows pinned to an application version no live executor runs. "
        + _CAPPED,
        [],
    ),
    "waymark_workflows_pending_oldest_age_seconds": (
        "Seconds since the oldest PENDING workflow was created (0: none).",
        [],
    ),
    "waymark_executors_live": (
        "Executors with a live heartbeat, by the application version they run.",
        ["application_version"],
    ),
    "waymark_schedule_lag_seconds": (
        "Seconds since the first tick that should have run after the schedule's latest run "
        "(0: none is due). Schedules declared by live executors.",
        ["schedule"],
    ),
    "waymark_table_rows_estimate": (
        "Rows per system table, estimated (Postgres: pg_class.reltuples; SQLite: the last "
        "rowid), never counted.",
        ["table"],
    ),
    "waymark_console_scrape_duration_seconds": (
        "Time the console spent reading the system tables for this scrape.",
        [],
    ),
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ConsoleCollector(Collector):
    """Reads the gauges on each ``collect()``; ``describe()`` names them without a query."""

    def __init__(self, now_ms: Callable[[], int] = _now_ms) -> None:
        self._now_ms = now_ms

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            name: GaugeMetricFamily(name, text, labels=labels)
            for name, (text, labels) in GAUGES.items()
        }

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families().values()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        now = self._now_ms()
        r = gauges.read(now)
        f = self._families()
        for status in gauges.UNFINISHED:
            f["waymark_workflows"].add_metric([status], r.unfinished.get(status, 0))
        for (status, window), n in sorted(r.recent.items()):
            f["waymark_workflows_recent"].add_metric([status, window], n)
        for name, queue in sorted(r.queues.items()):
            f["waymark_queue_enqueued"].add_metric([name], queue.enqueued)
            f["waymark_queue_running"].add_metric([name], queue.running)
            f["waymark_queue_delayed"].add_metric([name], queue.delayed)
            age = _age(now, queue.oldest_enqueued_ms)
            f["waymark_queue_oldest_enqueued_age_seconds"].add_metric([name], age)
        if r.stuck is not None and r.stranded is not None:  # else liveness is unknown
            f["waymark_workflows_stuck"].add_metric([], r.stuck)
            f["waymark_workflows_stranded"].add_metric([], r.stranded)
        f["waymark_workflows_pending_oldest_age_seconds"].add_metric(
            [], _age(now, r.oldest_pending_ms)
        )
        for version, n in sorted(r.live_by_version.items()):
            f["waymark_executors_live"].add_metric([version], n)
        for schedule, lag in sorted(r.schedule_lag.items()):
            f["waymark_schedule_lag_seconds"].add_metric([schedule], lag)
        for table, rows in sorted(r.table_rows.items()):
            f["waymark_table_rows_estimate"].add_metric([table], rows)
        f["waymark_console_scrape_duration_seconds"].add_metric([], time.perf_counter() - started)
        yield from f.values()


def _age(now_ms: int, since_ms: int | None) -> float:
    return max(0.0, (now_ms - since_ms) / 1000) if since_ms is not None else 0.0


def registry() -> CollectorRegistry:
    """A registry holding only the console's collector, made per scrape."""
    made = CollectorRegistry(auto_describe=False)
    made.register(ConsoleCollector())
    return made


def _refuse(status: int, reason: str) -> HttpResponse:
    response = HttpResponse(reason + "\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="waymark metrics"'
    return response


def _denied(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics, else the 401/403 to answer with."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        expected = settings.WAYMARK_METRICS_TOKEN
        # compare_digest: the time taken says nothing about how much of the token matched.
        if (
            expected
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            return None
        return _refuse(401, "That bearer token is not accepted for /metrics.")
    if not request.user.is_authenticated:
        return _refuse(
            401, "/metrics needs Authorization: Bearer <WAYMARK_METRICS_TOKEN> or an admin login."
        )
    if not request.user.has_perm("console.view_metrics"):
        return _refuse(403, "Your role may not read /metrics (the admin role may).")
    return None


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    denied = _denied(request)
    if denied is not None:
        return denied
    # The text format, or OpenMetrics when the scraper asks for it (Prometheus does).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry()), content_type=content_type)
