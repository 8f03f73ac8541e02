"""The fleet as the console sees it: executors by role (engine.fleet), hand-offs to Celery.

A workflow PENDING under a live dispatcher was handed to Celery and is not running yet: the
queues page counts it apart ("handed over"), and once it has waited longer than the re-send
interval (WAYMARK_CELERY_RESEND_AFTER) with no worker taking it, the overview lists it as
stuck, as it does workflows owned by an executor whose heartbeat expired. A handed-over
workflow of a version that no live Celery worker runs is stranded: no worker will take it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q

from console.models import Executor, Workflow


def resend_after_ms() -> int:
    return int(float(os.environ.get("WAYMARK_CELERY_RESEND_AFTER", "30")) * 1000)


def dispatchers(live: list[Executor]) -> set[str]:
    return {e.executor_id for e in live if e.role == "dispatcher"}


def stuck_filter(now_ms: int, live: list[Executor]) -> Q:
    """PENDING with no live owner, or handed over and taken by no worker for too long."""
    alive = [e.executor_id for e in live]
    untaken = Q(
        executor_id__in=sorted(dispatchers(live)), updated_at__lt=now_ms - resend_after_ms()
    )
    return Q(status="PENDING") & (~Q(executor_id__in=alive) | untaken)


def stranded_versions(live: list[Executor]) -> set[str]:
    """Versions dispatched to Celery that no live Celery worker runs."""
    served = {e.application_version for e in live if e.role == "celery"}
    return {e.application_version for e in live if e.role == "dispatcher"} - served


@dataclass
class ExecutorInfo:
    executor: Executor
    alive: bool
    running: int


def executors(now_ms: int, live: list[Executor]) -> list[ExecutorInfo]:
    """Every executor that heartbeated within ten heartbeat timeouts (live first), with the
    workflows it runs now (PENDING under it)."""
    timeout_ms = int(settings.WAYMARK_HEARTBEAT_TIMEOUT * 1000)
    recent = list(
        Executor.objects.filter(last_heartbeat__gte=now_ms - 10 * timeout_ms).order_by(
            "executor_id"
        )[:500]
    )
    ids = [e.executor_id for e in recent]
    running = dict(
        Workflow.objects.filter(status="PENDING", executor_id__in=ids)
        .values("executor_id")
        .annotate(n=Count("workflow_uuid"))
        .order_by()
        .values_list("executor_id", "n")
    )
    alive = {e.executor_id for e in live}
    found = [ExecutorInfo(e, e.executor_id in alive, running.get(e.executor_id, 0)) for e in recent]
    return sorted(found, key=lambda i: (not i.alive, i.executor.role or "", i.executor.executor_id))
