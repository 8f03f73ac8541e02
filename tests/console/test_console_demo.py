"""The demo (`make run`) fills every panel of the console on first run: children, messages,
events, a deadline, a retried step that succeeds, a long history. Both databases."""

from __future__ import annotations

import pytest
from django.db import connections
from django.urls import reverse

import tests.console.console_site as site
from console.models import Notification, Step, Workflow
from demo import app as demo
from engine import Client
from tests.console.test_console_content import text_of
from tests.console.test_console_operate import user
from tests.support import wait_until


@pytest.fixture
def seeded(make_engine, db):
    engine = make_engine("waymark-demo")
    demo.build(engine)
    engine.launch()
    client = Client(db.url, schema=db.schema)
    assert demo.seed(client) == 19
    site.point_engine_database(db)
    yield engine
    client.close()
    connections["waymark"].close()


def one(name: str) -> Workflow:
    return Workflow.objects.filter(name=name).order_by("created_at").first()  # type: ignore[return-value]


def test_the_demo_fills_every_panel(seeded) -> None:
    def done(name: str, count: int = 1) -> bool:
        return Workflow.objects.filter(name=name, status="SUCCESS").count() >= count

    for name, count in (
        ("restock", 1),
        ("convert_prices", 1),
        ("ledger_replay", 1),
        ("price_check", 1),
    ):
        wait_until(lambda n=name, c=count: done(n, c), limit=60, what=f"{name} to succeed")
    wait_until(lambda: done("approval"), limit=60, what="the answered approval")
    web = user("viewer")

    restock = web.get(reverse("workflow_detail", args=[one("restock").workflow_uuid]))
    assert restock.context["children_count"] == 3
    child = restock.context["children"][0]
    assert "counted" in text_of(web.get(reverse("workflow_detail", args=[child.workflow_uuid])))

    waiting = Workflow.objects.filter(name="approval", status="PENDING").get()
    page = web.get(reverse("workflow_detail", args=[waiting.workflow_uuid]))
    assert waiting.workflow_deadline_epoch_ms is not None
    assert "waiting for a message" in text_of(page) and "left" in text_of(page)
    assert "waiting for approval" in text_of(page)  # its event

    nap = one("long_nap")
    assert Notification.objects.filter(destination_uuid=nap.workflow_uuid).exists()
    assert "wake up gently" in text_of(
        web.get(reverse("workflow_detail", args=[nap.workflow_uuid]))
    )

    converted = one("convert_prices")
    (rates,) = Step.objects.filter(
        workflow_uuid=converted.workflow_uuid, function_name="fetch_rates"
    )
    assert rates.error is None and "USD" in (rates.output or "")  # succeeded on its 3rd attempt

    ledger = web.get(reverse("workflow_detail", args=[one("ledger_replay").workflow_uuid]))
    assert ledger.context["steps_total"] == 400 and ledger.context["steps_gap"]
