"""Issue 15, part 2: workflow attributes (both backends)."""

from __future__ import annotations

import psycopg
import pytest

from engine import Client, Engine
from tests.engine.test_recovery import rewind


def test_attributes_at_start_merged_in_the_body_and_searched(engine: Engine, db) -> None:
    @engine.workflow(name="order")
    def order(ctx, n):
        ctx.set_attributes({"stage": "paid", "total": n * 10, "vip": n == 2})
        return n

    q = engine.queue("orders")
    engine.launch()
    engine.start_workflow(order, 1, workflow_id="o1", attributes={"customer": "42"}).get_result(
        timeout=30
    )
    engine.start_workflow(
        order, 2, workflow_id="o2", attributes={"customer": "42", "region": "été"}
    ).get_result(timeout=30)
    engine.start_workflow(order, 3, workflow_id="o3", attributes={"customer": 42}).get_result(
        timeout=30
    )
    status = engine.get_workflow_status("o2")
    assert status is not None
    assert status.attributes == {
        "customer": "42", "region": "été", "stage": "paid", "total": 20, "vip": True
    }  # fmt: skip
    assert [s.name for s in engine.list_steps("o2")] == ["waymark.set_attributes"]

    def ids(**filters) -> list[str]:
        return [w.workflow_id for w in engine.list_workflows(newest_first=False, **filters)]

    assert ids(attributes={"customer": "42"}) == ["o1", "o2"]  # "42" is not 42
    assert ids(attributes={"customer": 42}) == ["o3"]
    assert ids(attributes={"customer": "42", "vip": True}) == ["o2"]
    assert ids(attributes={"vip": False}) == ["o1", "o3"]  # False is not 0
    assert ids(attributes={"region": "été", "total": 20}) == ["o2"]
    assert ids(attributes={"customer": "42", "region": "nowhere"}) == []
    assert ids(attributes={"customer": "42"}, name="order", status="SUCCESS") == ["o1", "o2"]
    assert ids(attributes={}) == ["o1", "o2", "o3"]
    assert [w.workflow_id for w in engine.list_workflows(attributes={"customer": "42"})] == [
        "o2", "o1"
    ]  # fmt: skip
    assert engine.get_workflow_status("o1").attributes["total"] == 10  # type: ignore[union-attr]

    with Client(db.url, schema=db.schema) as client:
        handle = client.start_workflow(
            "order", 4, queue="orders", workflow_id="o4", attributes={"customer": "7"}
        )
        assert handle.get_result(timeout=30) == 4
        found = client.list_workflows(attributes={"customer": "7"})
        assert [w.workflow_id for w in found] == ["o4"]
        assert found[0].attributes["stage"] == "paid"
    assert q.name == "orders"


def test_a_replayed_set_attributes_merges_once(make_engine, db) -> None:
    calls: list[str] = []

    def app() -> Engine:
        engine = make_engine("tagger", application_version="v1")

        @engine.workflow(name="tagger")
        def tagger(ctx):
            ctx.set_attributes({"n": 1})
            ctx.run_step(lambda: calls.append("step"))
            ctx.set_attributes({"m": "x", "n": 2})
            return "ok"

        engine.launch()
        return engine

    first = app()
    first.start_workflow("tagger", workflow_id="t1").get_result(timeout=30)
    first.shutdown()
    rewind(db, "t1", keep_steps=1)  # a crash after the first set_attributes
    db.raw("UPDATE workflow_status SET attributes = NULL WHERE workflow_uuid = %s", ("t1",))
    again = app()  # recovery replays step 1 (nothing merged again) and runs the rest
    assert again.retrieve_workflow("t1").get_result(timeout=30) == "ok"
    status = again.get_workflow_status("t1")
    assert status is not None and status.attributes == {"m": "x", "n": 2}
    assert calls == ["step", "step"]


def test_workflows_without_attributes_have_an_empty_dict(engine: Engine) -> None:
    @engine.workflow(name="bare")
    def bare(ctx):
        return 1

    engine.launch()
    engine.start_workflow(bare, workflow_id="b1").get_result(timeout=30)
    status = engine.get_workflow_status("b1")
    assert status is not None and status.attributes == {}
    assert engine.list_workflows(name="bare")[0].attributes == {}


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"customer": {"id": 42}},
            "value {'id': 42} of key 'customer' is a dict, not a JSON scalar",
        ),
        ({"tags": ["a"]}, "value ['a'] of key 'tags' is a list"),
        ({7: "x"}, "key 7 is not a non-empty string"),
        ({"": "x"}, "key '' is not a non-empty string"),
        ({"none": None}, "value None of key 'none' is a NoneType"),
        ("customer=42", "must be a mapping, got str"),
    ],
)
def test_bad_attributes_are_refused_and_nothing_is_written(
    engine: Engine, db, attributes, message
) -> None:
    @engine.workflow(name="target")
    def target(ctx):
        return 1

    engine.launch()
    with pytest.raises(TypeError) as raised:
        engine.start_workflow(target, workflow_id="bad", attributes=attributes)
    assert message in str(raised.value)
    assert "attributes map string keys to str, int, float or bool values" in str(raised.value)
    assert engine.get_workflow_status("bad") is None
    with pytest.raises(TypeError):
        engine.list_workflows(attributes=attributes)
    with Client(db.url, schema=db.schema) as client, pytest.raises(TypeError):
        client.start_workflow("target", queue=None, workflow_id="bad2", attributes=attributes)
    assert engine.get_workflow_status("bad2") is None


def test_a_bad_set_attributes_fails_before_a_step_is_recorded(engine: Engine) -> None:
    @engine.workflow(name="badset")
    def badset(ctx):
        try:
            ctx.set_attributes({"items": [1, 2]})
        except TypeError as exc:
            with pytest.raises(TypeError, match="must be a mapping, got NoneType"):
                ctx.set_attributes(None)
            ctx.set_attributes({"ok": True})
            return str(exc)
        return "accepted"

    engine.launch()
    message = engine.start_workflow(badset, workflow_id="bs").get_result(timeout=30)
    assert "value [1, 2] of key 'items' is a list" in message
    assert [s.step_id for s in engine.list_steps("bs")] == [1]  # the bad call took no step
    assert engine.get_workflow_status("bs").attributes == {"ok": True}  # type: ignore[union-attr]


def test_the_attribute_search_uses_an_index(engine: Engine, db) -> None:
    @engine.workflow(name="idx")
    def idx(ctx):
        return 1

    engine.launch()
    engine.start_workflow(idx, attributes={"customer": "42"}).get_result(timeout=30)
    if db.backend == "sqlite":
        plan = db.raw(
            "EXPLAIN QUERY PLAN SELECT workflow_uuid FROM workflow_attributes "
            "WHERE key = 'customer' AND value = '\"42\"'"
        )
        assert any("PRIMARY KEY" in str(row) or "COVERING INDEX" in str(row) for row in plan)
        return
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{db.schema}"'.encode())
        conn.execute(b"SET enable_seqscan = off")  # a tiny table: show the index is usable
        plan = conn.execute(
            b"EXPLAIN SELECT workflow_uuid FROM workflow_status "
            b'WHERE attributes @> \'{"customer": "42"}\'::jsonb'
        ).fetchall()
    assert "workflow_status_attributes_idx" in str(plan)
