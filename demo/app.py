"""The demo application: what `make run` shows in the console.

An order saga with a retried payment and a compensation, a report scheduled every 30 s, a
long durable sleep, a fan-out with ctx.go / ctx.select, and a workflow that fails.
"""

from __future__ import annotations

import random
import time

from engine import Engine


def build(engine: Engine) -> None:
    """Register the demo's workflows and queue on ``engine`` (WAYMARK_APP=demo.app:build)."""
    engine.queue("orders", worker_concurrency=4)

    @engine.step(name="reserve_stock")
    def reserve_stock(order: dict[str, object]) -> dict[str, object]:
        time.sleep(random.uniform(0.05, 0.3))
        return {"sku": order["sku"], "reserved": order["quantity"]}

    @engine.step(name="charge_card", max_attempts=4, interval_seconds=0.2, backoff_rate=2.0)
    def charge_card(order: dict[str, object]) -> str:
        time.sleep(random.uniform(0.05, 0.2))
        if order["card"] == "declined":
            raise PermissionError("card declined")
        # A flaky payment provider: the step is retried with backoff until it answers.
        if random.random() < 0.4:
            raise ConnectionError("payment provider timed out")
        return f"charge-{order['id']}"

    @engine.step(name="release_stock")
    def release_stock(reservation: dict[str, object]) -> str:
        return f"released {reservation['reserved']} x {reservation['sku']}"

    @engine.step(name="ship")
    def ship(order: dict[str, object], charge: str) -> str:
        time.sleep(random.uniform(0.05, 0.2))
        return f"order {order['id']} shipped ({charge})"

    @engine.workflow(name="order_saga")
    def order_saga(ctx, order):
        reservation = reserve_stock(order)
        try:
            charge = charge_card(order)
        except (ConnectionError, PermissionError) as exc:
            # The compensation is a step too: it runs once, even across crashes.
            return {"status": "cancelled", "why": str(exc), "undo": release_stock(reservation)}
        ctx.set_event("charge", charge)
        return {"status": "shipped", "detail": ship(order, charge)}

    @engine.step(name="summarize")
    def summarize(tick: str) -> dict[str, object]:
        return {"at": tick, "orders": random.randint(0, 40)}

    @engine.workflow(name="report", schedule="*/30 * * * * *")
    def report(ctx, tick):
        return summarize(tick.isoformat())

    @engine.step(name="quote")
    def quote(supplier: int) -> dict[str, object]:
        time.sleep(random.uniform(0.1, 0.8))
        return {"supplier": supplier, "price": round(random.uniform(10, 20), 2)}

    @engine.workflow(name="fan_out")
    def fan_out(ctx, suppliers):
        futures = [ctx.go(quote, s) for s in range(suppliers)]
        first = ctx.select(futures)
        quotes = [f.result() for f in futures]
        return {"first": first, "best": min(quotes, key=lambda q: q["price"])}

    @engine.step(name="wake_up")
    def wake_up() -> str:
        return "rested"

    @engine.workflow(name="long_nap")
    def long_nap(ctx, hours):
        ctx.sleep(hours * 3600)
        return wake_up()

    @engine.step(name="prepare")
    def prepare() -> str:
        return "prepared"

    @engine.workflow(name="always_fails")
    def always_fails(ctx, reason):
        prepare()
        raise RuntimeError(f"this workflow fails on purpose: {reason}")


def seed(client) -> int:  # type: ignore[no-untyped-def]
    """Enqueue a first batch of history for a fresh console; returns how many."""
    orders = [{"id": f"A{n}", "sku": "lamp", "quantity": n, "card": "ok"} for n in range(1, 9)]
    orders.append({"id": "B1", "sku": "desk", "quantity": 1, "card": "declined"})
    for order in orders:
        client.start_workflow("order_saga", order, queue="orders")
    client.start_workflow("fan_out", 5)
    client.start_workflow("long_nap", 1)
    client.start_workflow("always_fails", "demo")
    return len(orders) + 3
