"""Hand-offs to other processes (the Celery path without Celery): version-safe take-over, lost
hand-offs found once per interval, re-sends backed off and bounded."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

import pytest

from engine import Engine, Status
from engine.contrib import celery as waymark_celery
from engine.dispatch import Handoff
from tests.support import wait_until


class Recorder:
    """A dispatcher that only records what it was handed."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.handoff: Handoff | None = None
        self.lock = threading.Lock()

    def start(self, handoff: Handoff) -> None:
        self.handoff = handoff

    def dispatch(self, workflow_id: str) -> None:
        with self.lock:
            self.sent.append(workflow_id)


def build(engine: Engine) -> None:
    engine.queue("jobs", concurrency=5)

    @engine.step(name="double")
    def double(x: int) -> int:
        return x * 2

    @engine.workflow(name="job")
    def job(ctx, x):  # type: ignore[no-untyped-def]
        return double(x) + 1


def test_take_over_only_by_a_worker_of_the_workflows_version(
    make_engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    dispatcher = make_engine(
        executor_id="dispatcher", application_version="v1", dispatcher=recorder
    )
    build(dispatcher)
    other = make_engine(executor_id="w-v2", application_version="v2", claim_queues=False)
    build(other)
    same = make_engine(executor_id="w-v1", application_version="v1", claim_queues=False)
    build(same)
    dispatcher.launch()
    assert recorder.handoff is not None and recorder.handoff.application_version == "v1"
    handle = dispatcher.start_workflow("job", 20, queue="jobs")
    wait_until(lambda: handle.workflow_id in recorder.sent, limit=60, what="the hand-off")

    with caplog.at_level(logging.INFO, logger="waymark"):
        other.take_over(handle.workflow_id, "dispatcher")
    status = dispatcher.get_workflow_status(handle.workflow_id)
    assert status is not None and status.status == Status.PENDING
    assert status.executor_id == "dispatcher"  # untouched: still the dispatcher's
    mismatch = [r for r in caplog.records if getattr(r, "action", "") == "handoff.version_mismatch"]
    assert mismatch and "'v1'" in mismatch[0].getMessage() and "'v2'" in mismatch[0].getMessage()

    same.take_over(handle.workflow_id, "dispatcher")
    assert handle.get_result(timeout=60) == 41
    status = dispatcher.get_workflow_status(handle.workflow_id)
    assert status is not None and status.executor_id == "w-v1"
    same.take_over(handle.workflow_id, "dispatcher")  # a duplicate task runs nothing


def test_lost_hand_offs_come_back_once_per_interval(make_engine: Callable[..., Engine]) -> None:
    recorder = Recorder()
    dispatcher = make_engine(executor_id="dispatcher", dispatcher=recorder)
    build(dispatcher)
    dispatcher.launch()
    handle = dispatcher.start_workflow("job", 1, queue="jobs")
    wait_until(lambda: handle.workflow_id in recorder.sent, limit=60, what="the hand-off")
    assert recorder.handoff is not None
    unclaimed = recorder.handoff.unclaimed
    wait_until(lambda: unclaimed(0.001) == [handle.workflow_id], limit=60, what="a lost hand-off")
    # Just returned (and stamped): not again within the interval.
    assert unclaimed(3600) == []


def test_resends_back_off_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waymark_celery, "RESEND_AFTER_S", 10.0)
    dispatcher = waymark_celery.CeleryDispatcher(celery_app=None)
    sent_at = [t for t in range(0, 2000) if dispatcher.due_resends(["w"], float(t))]
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert gaps[:4] == [10, 20, 40, 80]  # doubling...
    assert set(gaps[4:]) == {80}  # ...up to RESEND_MAX_FACTOR times the interval
