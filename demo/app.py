"""The demo application: what `make run` shows in the console.

An order saga with a retried payment and a compensation, a report scheduled every 30 s, a
long durable sleep, a fan-out with ctx.go / ctx.select, a workflow that fails, a restock that
starts child workflows, approvals that wait for a message under a deadline, a step that fails
twice and then succeeds, a workflow with a long history, and an async price check (async
steps gathered on the engine's event loop): every panel of the console has
something on first run.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter

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

    @engine.step(name="count_shelf")
    def count_shelf(sku: str) -> int:
        time.sleep(random.uniform(0.05, 0.2))
        return random.randint(0, 12)

    @engine.workflow(name="restock_one")
    def restock_one(ctx, sku):
        on_shelf = count_shelf(sku)
        ctx.set_event("counted", on_shelf)
        return {"sku": sku, "ordered": max(0, 10 - on_shelf)}

    @engine.workflow(name="restock")
    def restock(ctx, skus):
        # Child workflows: each has its own page, linked from this one's timeline.
        children = [ctx.start_workflow(restock_one, sku) for sku in skus]
        return [child.get_result() for child in children]

    @engine.step(name="notify_approver")
    def notify_approver(request: dict[str, object]) -> str:
        return f"asked {request['approver']}"

    @engine.workflow(name="approval")
    def approval(ctx, request):
        notify_approver(request)
        ctx.set_event("stage", "waiting for approval")
        answer = ctx.recv(topic="approve", timeout=request["wait_seconds"])
        ctx.set_event("stage", "decided")
        return {"approved": bool(answer and answer.get("approved")), "answer": answer}

    attempts: Counter[str] = Counter()
    attempts_lock = threading.Lock()

    @engine.step(name="fetch_rates", max_attempts=4, interval_seconds=0.5, backoff_rate=2.0)
    def fetch_rates(workflow_id: str) -> dict[str, float]:
        # Fails twice, then answers: a retried step that succeeds.
        with attempts_lock:
            attempts[workflow_id] += 1
            tries = attempts[workflow_id]
        if tries < 3:
            raise ConnectionError(f"rates service unavailable (attempt {tries})")
        return {"EUR": 1.0, "USD": 1.08}

    @engine.workflow(name="convert_prices")
    def convert_prices(ctx, amount):
        rates = fetch_rates(ctx.workflow_id)
        return {k: round(amount * v, 2) for k, v in rates.items()}

    @engine.step(name="ledger_entry")
    def ledger_entry(n: int) -> int:
        return n * n

    @engine.workflow(name="ledger_replay")
    def ledger_replay(ctx, entries):
        # A long history: hundreds of steps (the console shows the first and last 100).
        return sum(ledger_entry(n) for n in range(entries))

    @engine.step(name="supplier_quote")
    async def supplier_quote(supplier: str, sku: str) -> float:
        await asyncio.sleep(0.05)  # an awaited call to a supplier's API
        return round(10 + len(supplier) * 1.5 + len(sku), 2)

    @engine.workflow(name="price_check")
    async def price_check(ctx, sku):
        # Step IDs are taken at the call: gathered steps replay deterministically.
        quotes = await asyncio.gather(*(supplier_quote(s, sku) for s in ("acme", "globex")))
        await ctx.sleep_async(1)
        return {"sku": sku, "best": min(quotes)}


def seed(client) -> int:  # type: ignore[no-untyped-def]
    """Enqueue a first batch of history for a fresh console; returns how many."""
    orders = [{"id": f"A{n}", "sku": "lamp", "quantity": n, "card": "ok"} for n in range(1, 9)]
    orders.append({"id": "B1", "sku": "desk", "quantity": 1, "card": "declined"})
    for order in orders:
        client.start_workflow("order_saga", order, queue="orders")
    client.start_workflow("fan_out", 5)
    nap = client.start_workflow("long_nap", 1).workflow_id
    # A message nobody reads (the nap never calls recv): it waits in the nap's messages panel.
    client.send(nap, {"note": "wake up gently"}, topic="reminders")
    client.start_workflow("always_fails", "demo")
    client.start_workflow("restock", ["lamp", "desk", "chair"])
    # Approvals under a deadline: one answered at once, one still waiting for its message.
    answered = client.start_workflow(
        "approval", {"approver": "ada", "wait_seconds": 600}, timeout=900
    ).workflow_id
    client.send(answered, {"approved": True, "by": "ada"}, topic="approve")
    client.start_workflow("approval", {"approver": "grace", "wait_seconds": 600}, timeout=900)
    client.start_workflow("convert_prices", 25.0)
    client.start_workflow("ledger_replay", 400)
    client.start_workflow("price_check", "lamp")
    return len(orders) + 10
