"""`make run`: start a few workflows on the embedded SQLite default and print what happened."""

from __future__ import annotations

import os
import uuid

from demo import app
from engine import Engine, WorkflowFailedError


def main() -> None:
    url = os.environ.get("WAYMARK_DATABASE_URL", "sqlite:///waymark-demo.sqlite3")
    engine = Engine("waymark-demo", url)
    workflows = app.build(engine)
    engine.launch()
    print(f"Waymark demo on {url} (application version {engine.application_version})\n")

    orders = [{"id": f"A{n}", "sku": "lamp", "quantity": n, "card": "ok"} for n in range(1, 4)] + [
        {"id": "B1", "sku": "desk", "quantity": 1, "card": "declined"}
    ]
    handles = [
        engine.start_workflow(workflows["order_saga"], order, workflow_id=f"order-{uuid.uuid4()}")
        for order in orders
    ]
    handles.append(engine.start_workflow(workflows["always_fails"], "demo"))

    for handle in handles:
        try:
            result: object = handle.get_result(timeout=30)
        except WorkflowFailedError as exc:
            result = f"ERROR {exc.error_name}: {exc.error_message}"
        status = handle.get_status()
        print(f"{status.name:<14} {handle.workflow_id}  {status.status}")
        print(f"  result: {result}")
        for step in engine.list_steps(handle.workflow_id):
            outcome = step.error if step.error else step.output
            print(f"  step {step.step_id}: {step.name:<14} {outcome}")
        print()
    engine.shutdown()


if __name__ == "__main__":
    main()
