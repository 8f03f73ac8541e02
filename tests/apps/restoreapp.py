"""A bare Celery app for the broker-restart test: many short ``acks_late`` tasks, so every
worker holds unacknowledged messages (running, and waiting in BRPOP for the next) whenever
Redis goes away: kombu's restore-unacknowledged path on connection loss. The broker settings
are exactly those of the console's app (console/celery_broker.py).

WAYMARK_CELERY_BROKER_URL: the broker; WAYMARK_TEST_LEDGER: each task appends its tag;
WAYMARK_TEST_STOCK_TRANSPORT=1 uses kombu's own Redis transport instead (to see the crash).
"""

from __future__ import annotations

import os
import time

from celery import Celery

from console import celery_broker
from tests.apps.workerapp import ledger

app = Celery("restoreapp")
app.conf.update(celery_broker.settings(os.environ["WAYMARK_CELERY_BROKER_URL"]))
if os.environ.get("WAYMARK_TEST_STOCK_TRANSPORT") == "1":
    app.conf.broker_transport = None


@app.task(name="restore.work", ignore_result=True)  # type: ignore[untyped-decorator]
def work(tag: str, seconds: float) -> None:
    time.sleep(seconds)
    ledger(tag)
