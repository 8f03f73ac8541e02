"""Losing the system database, on a private Postgres that the tests stop and start: a short
outage is retried through; a long one pauses the workflows (never fails them) and they resume
when it answers again; a caller gets SystemDatabaseUnavailableError with the reason."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest

from engine import Client, Engine, Status, SystemDatabaseUnavailableError
from tests.conftest import IN_CI
from tests.services import postgres_binaries_missing, private_postgres
from tests.support import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def pg():  # type: ignore[no-untyped-def]
    missing = postgres_binaries_missing()
    if missing:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    with private_postgres() as (url, server):
        yield url, server


def two_steps(engine: Engine, gate: threading.Event, ran: Counter[str]):  # type: ignore[no-untyped-def]
    @engine.step(name="first")
    def first() -> int:
        ran["first"] += 1
        gate.wait(30)
        return 1

    @engine.step(name="second")
    def second() -> int:
        ran["second"] += 1
        return 2

    @engine.workflow(name="two")
    def two(ctx) -> int:
        return first() + second()

    return two


def logged(caplog: pytest.LogCaptureFixture, action: str) -> bool:
    return any(getattr(r, "action", None) == action for r in caplog.records)


def test_a_short_outage_is_retried_through(pg, caplog) -> None:
    url, server = pg
    caplog.set_level(logging.WARNING)
    engine = Engine("outage", url, executor_id="short-1", db_retry_seconds=60)
    gate, ran = threading.Event(), Counter[str]()
    two = two_steps(engine, gate, ran)
    engine.launch()
    try:
        handle = engine.start_workflow(two, workflow_id="short-1")
        wait_until(lambda: ran["first"] == 1, what="the first step to start")
        server.stop()
        gate.set()  # the step ends while its checkpoint cannot be written
        wait_until(lambda: logged(caplog, "store.retry"), what="a retry to be logged")
        server.start()
        assert handle.get_result(timeout=60) == 3
        assert ran == {"first": 1, "second": 1}  # the checkpoint was retried, not lost
        assert not logged(caplog, "workflow.db_lost")
    finally:
        engine.shutdown(timeout=5)


def test_a_long_outage_pauses_workflows_and_they_resume(pg, caplog) -> None:
    url, server = pg
    caplog.set_level(logging.WARNING)
    engine = Engine("outage", url, executor_id="long-1", db_retry_seconds=1.0)
    gate, ran = threading.Event(), Counter[str]()
    two = two_steps(engine, gate, ran)
    engine.launch()
    client = Client(url, db_retry_seconds=1.0)
    try:
        handle = engine.start_workflow(two, workflow_id="long-1")
        wait_until(lambda: ran["first"] == 1, what="the first step to start")
        assert client.get_workflow_status("long-1") is not None  # connected before the loss
        server.stop()
        gate.set()
        wait_until(lambda: logged(caplog, "workflow.db_lost"), what="the workflow to pause")
        with pytest.raises(SystemDatabaseUnavailableError, match="stayed unreachable for 1 s"):
            client.get_workflow_status("long-1")
        server.start()
        assert handle.get_result(timeout=60) == 3
        status = client.get_workflow_status("long-1")
        assert status is not None and status.status == Status.SUCCESS
        # Only the step whose checkpoint was lost ran again; nothing failed.
        assert ran == {"first": 2, "second": 1}
    finally:
        client.close()
        engine.shutdown(timeout=5)
