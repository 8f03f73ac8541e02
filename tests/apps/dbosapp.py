"""A small application on the real dbos-py package, writing a DBOS system database for the
console's DBOS-source tests.

    python -m tests.apps.dbosapp seed  URL SCHEMA   every kind of row, then exit (sleepers
                                                    stay PENDING, one with an open stream;
                                                    a parked workflow ENQUEUED)
    python -m tests.apps.dbosapp serve URL SCHEMA   run until killed: serves the gated workflow
                                                    (and whatever the console resumes or forks)

URL is a postgresql:// or sqlite:/// system database URL; SCHEMA the DBOS system schema
(Postgres only). The process prints "ready" once launched.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import datetime

from dbos import DBOS, DBOSClient, SetWorkflowAttributes, SetWorkflowID
from dbos._serialization import WorkflowSerializationFormat


@DBOS.step()
def shout(name: str) -> str:
    return name.upper()


@DBOS.step()
def explode(n: int) -> int:
    raise ValueError(f"step failed on {n}")


@DBOS.workflow()
def greet(name: str) -> dict[str, str]:
    return {"greeting": f"hello {shout(name)}"}


@DBOS.workflow(serialization_type=WorkflowSerializationFormat.PORTABLE)
def greet_portable(name: str) -> dict[str, object]:
    return {"greeting": f"hi {shout(name)}", "n": [1, 2]}


@DBOS.workflow()
def fail(n: int) -> int:
    return explode(n)


@DBOS.workflow()
def parent(name: str) -> str:
    handle = DBOS.start_workflow(greet, name)
    return str(handle.get_result())


@DBOS.workflow()
def chatty() -> str:
    DBOS.set_event("progress", {"pct": 50})
    DBOS.send("inbox-1", {"approve": True}, topic="approve")
    DBOS.send("inbox-1", {"approve": "again"}, topic="approve")
    DBOS.write_stream("log", "line one")
    DBOS.write_stream("log", "line two")
    DBOS.set_event("progress", {"pct": 100})
    return "sent"


@DBOS.workflow(serialization_type=WorkflowSerializationFormat.PORTABLE)
def reporter(rows: int) -> str:
    """Portable: an event set again on every row, a stream of rows, then closed."""
    for row in range(rows):
        DBOS.set_event("phase", {"row": row})
        DBOS.write_stream("rows", {"row": row, "note": "<b>bold</b>"})
    DBOS.set_event("done", True)
    DBOS.close_stream("rows")
    return "reported"


@DBOS.workflow()
def ticker() -> str:
    """Pickled: a stream left open while the workflow sleeps (it stays PENDING)."""
    DBOS.write_stream("ticks", "tick 0")
    DBOS.write_stream("ticks", {"tick": 1})
    DBOS.sleep(3600)
    return "ticked"


@DBOS.workflow()
def inbox() -> object:
    return DBOS.recv("approve", timeout_seconds=60)


@DBOS.workflow()
def sleeper(seconds: float) -> str:
    shout("before")
    DBOS.sleep(seconds)
    return "woke"


@DBOS.workflow()
def family() -> str:
    """A sleeping child (family-1-1) under a sleeping parent: both stay PENDING."""
    DBOS.start_workflow(sleeper, 3600)
    DBOS.sleep(3600)
    return "never"


@DBOS.workflow()
def nightly(when: datetime, context: object) -> None:
    """Scheduled at 03:00 every day: the seed only records the schedule."""


@DBOS.step()
def mark(label: str) -> str:
    return f"{label} done"


@DBOS.workflow()
def gated(tag: str) -> str:
    """Steps 1-3: a step, an event, a stream value; 4-5: wait for "go" (its timeout's sleep);
    6-9: the event again, another value, a step, the stream closed. The end-to-end test
    cancels it while it waits, resumes it, and forks it from step 6."""
    first = mark(f"{tag}-a")
    DBOS.set_event("stage", "a")
    DBOS.write_stream("out", f"{tag}-a")
    go = DBOS.recv("go", timeout_seconds=600)
    DBOS.set_event("stage", "b")
    DBOS.write_stream("out", f"{tag}-b")
    second = mark(f"{tag}-b")
    DBOS.close_stream("out")
    return f"{first}; {second}; go={go}"


def _config(url: str, schema: str) -> dict[str, object]:
    config: dict[str, object] = {
        "name": "dbosapp",
        "system_database_url": url,
        "application_version": "v1",
        "executor_id": f"dbosapp-{os.getpid()}",
        "notification_listener_polling_interval_sec": 0.05,
    }
    if url.startswith("postgres"):
        config["dbos_system_schema"] = schema
    return config


def seed(url: str, schema: str) -> None:
    DBOS(config=_config(url, schema))  # type: ignore[arg-type]
    DBOS.launch()
    # a registered queue: DBOS records its limits in its queues table
    DBOS.register_queue("limited", global_concurrency=3, worker_concurrency=2)
    DBOS.create_schedule(schedule_name="nightly-report", workflow_fn=nightly, schedule="0 3 * * *")
    with SetWorkflowID("ok-1"), SetWorkflowAttributes({"customer": "acme", "tier": 2}):
        greet("ada")
    with SetWorkflowID("portable-1"):
        greet_portable("bob")
    with SetWorkflowID("fail-1"):
        try:
            fail(7)
        except ValueError:
            pass
    with SetWorkflowID("parent-1"):
        parent("cy")
    with SetWorkflowID("inbox-1"):
        inbox_handle = DBOS.start_workflow(inbox)
    with SetWorkflowID("chatty-1"):
        chatty()
    inbox_handle.get_result()  # one of the two messages consumed, the other left waiting
    with SetWorkflowID("cancelled-1"):
        DBOS.start_workflow(sleeper, 3600)
    _wait_step("cancelled-1", 2)
    DBOS.cancel_workflow("cancelled-1")
    client = DBOSClient(system_database_url=url, **_client_schema(url, schema))
    client.enqueue(
        {"queue_name": "parked", "workflow_name": "greet", "workflow_id": "queued-1"}, "q"
    )
    client.destroy()
    with SetWorkflowID("reporter-1"):
        reporter(3)
    with SetWorkflowID("sleeping-1"):
        DBOS.start_workflow(sleeper, 3600)
    _wait_step("sleeping-1", 2)
    with SetWorkflowID("ticking-1"):
        DBOS.start_workflow(ticker)
    _wait_step("ticking-1", 3)
    with SetWorkflowID("family-1"):
        DBOS.start_workflow(family)
    _wait_step("family-1", 2)
    _wait_step("family-1-1", 2)
    print("seeded", flush=True)
    os._exit(0)  # leave sleeping-1 PENDING, as a crashed or stopped process would


def _client_schema(url: str, schema: str) -> dict[str, str]:
    return {"dbos_system_schema": schema} if url.startswith("postgres") else {}


def _wait_step(workflow_id: str, count: int) -> None:
    """Until the workflow has recorded ``count`` steps (a sleep records its wake-up first)."""
    done = threading.Event()
    while not done.wait(0.05):
        if len(DBOS.list_workflow_steps(workflow_id)) >= count:
            return


def serve(url: str, schema: str) -> None:
    DBOS(config=_config(url, schema))  # type: ignore[arg-type]
    DBOS.launch()
    with SetWorkflowID("gated-1"):
        DBOS.start_workflow(gated, "g")
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    {"seed": seed, "serve": serve}[sys.argv[1]](sys.argv[2], sys.argv[3])
