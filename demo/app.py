"""Demo workflows: an order saga with a retried step and a compensation, and a failing one."""

from __future__ import annotations

import random

from engine import Engine


def build(engine: Engine) -> dict[str, object]:
    """Register the demo workflows on ``engine``; returns them by short name."""

    @engine.step(name="reserve_stock")
    def reserve_stock(order: dict[str, object]) -> dict[str, object]:
        return {"sku": order["sku"], "reserved": order["quantity"]}

    @engine.step(name="charge_card", max_attempts=4, interval_seconds=0.05, backoff_rate=2.0)
    def charge_card(order: dict[str, object]) -> str:
        if order["card"] == "declined":
            raise PermissionError("card declined")
        # A flaky payment provider: the step is retried with backoff until it answers.
        if random.random() < 0.5:
            raise ConnectionError("payment provider timed out")
        return f"charge-{order['id']}"

    @engine.step(name="release_stock")
    def release_stock(reservation: dict[str, object]) -> str:
        return f"released {reservation['reserved']} x {reservation['sku']}"

    @engine.step(name="ship")
    def ship(order: dict[str, object], charge: str) -> str:
        return f"order {order['id']} shipped ({charge})"

    @engine.workflow(name="order_saga")
    def order_saga(ctx, order):
        reservation = reserve_stock(order)
        try:
            charge = charge_card(order)
        except (ConnectionError, PermissionError) as exc:
            # The compensation is a step too: it runs once, even across crashes.
            return {"status": "cancelled", "why": str(exc), "undo": release_stock(reservation)}
        return {"status": "shipped", "detail": ship(order, charge)}

    @engine.step(name="prepare")
    def prepare() -> str:
        return "prepared"

    @engine.workflow(name="always_fails")
    def always_fails(ctx, reason):
        prepare()
        raise RuntimeError(f"this workflow fails on purpose: {reason}")

    return {"order_saga": order_saga, "always_fails": always_fails}
