"""The store contract: both dialects define the same queries and build the same schema."""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from engine import store
from engine.store import base, groupcommit, postgres, records
from tests.conftest import PG_URL, Database, require_postgres
from tests.store.test_store_rules import new as new_workflow

SQL_DIR = Path(__file__).resolve().parents[2] / "engine" / "sql"
TABLES = ("workflow_status", "operation_outputs", "notifications", "workflow_events")


def test_both_dialects_define_the_same_queries_and_migrations() -> None:
    sqlite_queries, pg_queries = base.load_queries("sqlite"), base.load_queries("postgres")
    # Postgres alone has the merged batch write (arrays via unnest); its parameters are those
    # of the writes it merges, prefixed.
    assert sorted(sqlite_queries) == sorted(set(pg_queries) - {"write_batch", "notify"})
    # Each kind it merges arrives as a JSON recordset whose columns are that query's parameters.
    for name, keys in [*postgres.MERGEABLE.items(), *((r, ()) for r in postgres.RIDERS)]:
        params = set(re.findall(r"%\(([a-z_]+)\)s", pg_queries[name]))
        recordset = re.search(
            rf"%\({name}\)s::json\)\s+AS v\((.*?)\)\n", pg_queries["write_batch"], re.S
        )
        assert recordset is not None, name
        columns = {part.split()[0] for part in recordset.group(1).split(",")}
        assert columns == params, name
        assert set(keys) <= params | {"name"}
    assert len(sqlite_queries) >= 10
    for name, sql in sqlite_queries.items():
        assert "%(" not in sql, f"sqlite query {name} uses Postgres parameters"
        params_sqlite = set(re.findall(r":([a-z_]+)", sql))
        params_pg = set(re.findall(r"%\(([a-z_]+)\)s", pg_queries[name]))
        assert params_sqlite == params_pg, name
    versions = lambda d: [(v, n) for v, n, _ in base.load_migrations(d)]  # noqa: E731
    assert versions("sqlite") == versions("postgres")
    assert versions("sqlite")[0] == (1, "0001_initial.sql")


def columns(db, table: str) -> list[str]:
    if db.backend == "sqlite":
        return [row[1] for row in db.raw(f"PRAGMA table_info({table})")]
    return [
        row[0]
        for row in db.raw(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (db.schema, table),
        )
    ]


def test_migrations_build_the_schema_and_are_idempotent(db) -> None:
    st = store.connect(db.url, db.schema)
    try:
        st.migrate()
        st.migrate()  # a second launch finds nothing to do
    finally:
        st.close()
    expected = [(v, name) for v, name, _ in base.load_migrations(db.backend)]
    assert db.raw("SELECT version, name FROM waymark_migrations ORDER BY version") == expected
    found = {table: columns(db, table) for table in TABLES}
    for required in (
        "workflow_uuid",
        "status",
        "name",
        "inputs",
        "output",
        "error",
        "executor_id",
        "created_at",
        "updated_at",
        "application_version",
        "recovery_attempts",
        "queue_name",
        "workflow_timeout_ms",
        "workflow_deadline_epoch_ms",
        "started_at_epoch_ms",
        "deduplication_id",
        "priority",
        "forked_from",
        "parent_workflow_id",
        "serialization",
        "completed_at",
    ):
        assert required in found["workflow_status"]
    assert found["operation_outputs"][:3] == ["workflow_uuid", "function_id", "function_name"]


def test_concurrent_migrations_do_not_collide(db) -> None:
    failures: list[BaseException] = []

    def migrate() -> None:
        st = store.connect(db.url, db.schema)
        try:
            st.migrate()
        except BaseException as exc:
            failures.append(exc)
        finally:
            st.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert db.raw("SELECT count(*) FROM waymark_migrations") == [
        (len(base.load_migrations(db.backend)),)
    ]


def test_bad_urls_and_schema_names_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="unsupported database_url"):
        store.connect("mysql://localhost/db")
    with pytest.raises(ValueError, match="names no file"):
        store.connect("sqlite:///:memory:")
    with pytest.raises(ValueError, match="not a valid schema name"):
        postgres.check_schema_name('bad"; DROP TABLE x; --')


def test_group_commit_batches_concurrent_writes_and_isolates_a_failing_one() -> None:
    batches: list[int] = []
    gate = threading.Event()

    def execute(writes):
        batches.append(len(writes))
        if len(batches) == 1:
            gate.wait(5)  # hold the first commit so the others queue up behind it
        if any(name == "bad" for ((name, _),) in writes):
            raise RuntimeError("bad statement")
        return [[[name]] for ((name, _),) in writes]

    committer = groupcommit.GroupCommitter(execute)
    results: dict[str, object] = {}

    def submit(sql: str) -> None:
        try:
            results[sql] = committer.submit([(sql, {})])[0]
        except RuntimeError as exc:
            results[sql] = exc

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    while not batches:
        time.sleep(0.001)
    others = [threading.Thread(target=submit, args=(s,)) for s in ("a", "b", "bad", "c")]
    for t in others:
        t.start()
    while len(committer._queue) < 4:  # all four are waiting behind the held commit
        time.sleep(0.001)
    gate.set()
    for t in [first, *others]:
        t.join()
    assert batches[0] == 1
    assert batches[1] == 4  # the four waiters went in one batch...
    assert results["a"] == ["a"] and results["c"] == ["c"]  # ...and the bad one failed alone
    assert isinstance(results["bad"], RuntimeError)


def test_async_writes_share_commits_with_threads_and_hold_no_thread() -> None:
    """Coroutines' writes join the same queue as threads' writes; the committing thread
    resolves them on their loop, and a lone async write still gets a leader."""
    import asyncio

    batches: list[list[str]] = []
    gate = threading.Event()

    def execute(writes):
        batches.append([name for ((name, _),) in writes])
        if len(batches) == 1:
            gate.wait(5)  # hold the first commit so the async writes queue up behind it
        if any(name == "bad" for ((name, _),) in writes):
            raise RuntimeError("bad statement")
        return [[[name]] for ((name, _),) in writes]

    committer = groupcommit.GroupCommitter(execute)
    holder = threading.Thread(target=committer.submit, args=([("held", {})],))
    holder.start()
    while not batches:
        time.sleep(0.001)

    async def main():
        before = threading.active_count()

        async def one(name: str):
            try:
                return (await committer.submit_async([(name, {})]))[0]
            except RuntimeError as exc:
                return exc

        writes = asyncio.gather(*(one(n) for n in ("a", "b", "bad", "c")))
        while len(committer._queue) < 4:
            await asyncio.sleep(0.001)
        threads_waiting = threading.active_count() - before
        gate.set()
        got = await writes
        alone = (await committer.submit_async([("alone", {})]))[0]  # no leader: one is spawned
        return got, alone, threads_waiting

    got, alone, threads_waiting = asyncio.run(main())
    holder.join()
    assert batches[1] == ["a", "b", "bad", "c"]  # one batch for the four async writes
    assert got[0] == ["a"] and got[3] == ["c"] and isinstance(got[2], RuntimeError)
    assert alone == ["alone"] and batches[-1] == ["alone"]
    assert threads_waiting == 0  # four writes waiting, no thread started for them


def test_a_batch_of_writes_maps_each_outcome_to_its_write(db) -> None:
    """One batch (one transaction) with colliding keys: each write learns its own outcome."""
    st = store.connect(db.url, db.schema)
    try:
        st.migrate()

        def new(workflow_id: str, name: str) -> groupcommit.Statement:
            return base.workflow_statement(
                records.NewWorkflow(
                    workflow_id=workflow_id,
                    name=name,
                    inputs="{}",
                    status="PENDING",
                    application_version="v",
                    application_id="a",
                    executor_id="x",
                    started_at=1,
                )
            )

        inserts = [new("w1", "first"), new("w1", "second"), new("w2", "first")]
        outcome = [bool(rows) for (rows,) in st._execute_batch([[w] for w in inserts])]
        assert outcome.count(True) == 2 and outcome[2] is True

        def step(workflow_id: str) -> groupcommit.Statement:
            return base.step_statement(records.NewStep(workflow_id, 1, "s", "1", None, 1))

        steps = [
            step("w1"),
            step("w1"),
            step("w2"),
            base.finish_statements("w1", "SUCCESS", "x", "1", None, None)[0],
            base.finish_statements("w2", "ERROR", "x", None, "{}", None)[0],
        ]
        results = [rows for (rows,) in st._execute_batch([[w] for w in steps])]
        assert [bool(r) for r in results] == [True, False, True, True, True]
        assert results[0][0]["status"] == "PENDING" and results[0][0]["owner"] == "x"
        assert db.raw("SELECT workflow_uuid, status FROM workflow_status ORDER BY 1") == [
            ("w1", "SUCCESS"),
            ("w2", "ERROR"),
        ]
    finally:
        st.close()


def finish_after_step_cases(st: base.Store) -> None:
    """A workflow's last step and its final status commit together, and the status only with
    a step this write recorded: when another execution had recorded it, neither is written.
    Alone, with a traceback (another statement in the transaction), and in one batch."""

    def last(workflow_id: str) -> records.NewStep:
        return records.NewStep(workflow_id, 2, "s", '"ours"', None, 1)

    for workflow_id in ("alone", "traced", "taken", "b1", "b2"):
        st.insert_workflow(new_workflow(workflow_id, executor_id="x"))
    st.record_step(records.NewStep("taken", 2, "s", '"theirs"', None, 1), "y")

    step, written = st.finish_after_step(last("alone"), "SUCCESS", "x", '"ours"', None)
    assert step == records.StepOutcome(True, "PENDING", True)
    assert written is not None and written.status == "SUCCESS"
    step, written = st.finish_after_step(last("traced"), "ERROR", "x", None, "{}", "Traceback")
    assert step.recorded and written is not None and written.status == "ERROR"
    for traceback in (None, "Traceback"):
        step, written = st.finish_after_step(last("taken"), "ERROR", "x", None, "{}", traceback)
        assert not step.recorded and written is None

    def write(workflow_id: str) -> list[groupcommit.Statement]:
        ended = base.finish_statements(workflow_id, "SUCCESS", "x", '"ours"', None, None, 2)
        return [base.step_statement(last(workflow_id)), *ended]

    results = st._execute_batch([write("b1"), write("taken"), write("b2")])
    assert [[bool(rows) for rows in each] for each in results] == [
        [True, True],
        [False, False],
        [True, True],
    ]
    statuses = st._rows("list_workflows_oldest", {
        "statuses": None, "name": None, "id_prefix": None, "queue_name": None,
        "application_version": None, "created_after": None, "created_before": None,
        "limit": 10, "offset": 0,
    })  # fmt: skip
    ours = ("alone", "traced", "taken", "b1", "b2")
    assert {r["workflow_uuid"]: r["status"] for r in statuses if r["workflow_uuid"] in ours} == {
        "alone": "SUCCESS",
        "traced": "ERROR",
        "taken": "PENDING",
        "b1": "SUCCESS",
        "b2": "SUCCESS",
    }
    assert [s.output for s in st.list_steps("taken")] == ['"theirs"']


def test_a_last_step_and_the_final_status_commit_together_only_with_a_new_step(db) -> None:
    st = store.connect(db.url, db.schema)
    try:
        st.migrate()
        finish_after_step_cases(st)
    finally:
        st.close()


def test_a_partition_whose_workflows_all_finished_still_counts_as_served(db) -> None:
    """The turn order of a partitioned queue: a partition served a moment ago, whose workflows
    have all finished, goes after one never served (it used to tie with it, and win by name)."""
    st = store.connect(db.url, db.schema)
    try:
        st.migrate()
        queued = {"queue_name": "q", "executor_id": None}
        st.insert_workflow(
            new_workflow("big-done", status="SUCCESS", partition_key="big", **queued)
        )
        st.insert_workflow(
            new_workflow("big-1", status="ENQUEUED", partition_key="big", started_at=None, **queued)
        )
        st.insert_workflow(
            new_workflow("s2-1", status="ENQUEUED", partition_key="s2", started_at=None, **queued)
        )
        turns = st._rows("queue_partitions", {"queue_name": "q"})
        assert [(r["partition_key"], r["running"], r["waiting"]) for r in turns] == [
            ("s2", 0, 1),
            ("big", 0, 1),
        ]
    finally:
        st.close()


def test_sends_and_consumes_merge_into_one_batch_with_their_notifications(db) -> None:
    """Sends (one to a missing workflow), recv consumes (one whose step another execution
    recorded first) and finishes in one batch: each write gets its own outcome, a consume
    deletes only the message its own step holds, and every NOTIFY is delivered."""
    st = store.connect(db.url, db.schema)
    listener = psycopg.connect(PG_URL, autocommit=True) if db.backend == "postgres" else None
    try:
        st.migrate()
        for wid in ("r1", "r2"):
            st.insert_workflow(
                records.NewWorkflow(
                    workflow_id=wid, name="n", inputs="{}", status="PENDING",
                    application_version="v", application_id="a", executor_id="x", started_at=1,
                )
            )  # fmt: skip
        st.record_step(records.NewStep("r2", 1, "waymark.recv", '"other"', None, 1), "x")

        def send(dest: str, message_id: str) -> list[groupcommit.Statement]:
            params = {
                "destination_id": dest, "topic": None, "message": '"m"', "message_id": message_id,
                "now": 1,
            }  # fmt: skip
            return [("send_message", params), *st._notify(f"msg:{dest}")]

        for wid, mid in (("r1", "old1"), ("r2", "old2")):
            st.messages.send_message(wid, '"m"', None, mid)

        def consume(wid: str, message_id: str) -> list[groupcommit.Statement]:
            step = records.NewStep(wid, 1, "waymark.recv", '"m"', None, 1)
            delete = {"message_id": message_id, "workflow_id": wid, "step_id": 1, "output": '"m"'}
            return [base.step_statement(step), ("delete_message", delete)]

        writes = [send("r1", "new1"), send("nobody", "new2"), consume("r1", "old1"),
                  consume("r2", "old2")]  # fmt: skip
        if listener is not None:  # listening before the batch commits
            listener.execute(f'LISTEN "waymark_{db.schema}"'.encode())
        results = st._execute_batch(writes)
        assert [bool(r[0]) for r in results] == [True, False, True, False]
        assert all(rider == [] for r in results for rider in r[1:])
        left = db.raw("SELECT message_uuid FROM notifications ORDER BY message_uuid")
        assert left == [("new1",), ("old2",)]  # r2's step held another message: old2 stays
        if listener is not None:
            heard = {n.payload for n in listener.notifies(timeout=10, stop_after=2)}
            heard |= {n.payload for n in listener.notifies(timeout=0.2)}  # and no more
            assert heard == {"msg:r1", "msg:nobody"}
    finally:
        if listener is not None:
            listener.close()
        st.close()


def test_both_dialects_build_the_same_columns_in_the_same_order(tmp_path) -> None:
    """DBOS's column names, in the same order, on SQLite and on Postgres (see DESIGN.md).
    Both schemas are built here, in one test, so no test order or selection makes it vacuous."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    dbs = [
        Database("sqlite", f"sqlite:///{tmp_path / 'cols.sqlite3'}", "waymark"),
        Database("postgres", PG_URL, schema),
    ]
    try:
        for each in dbs:
            st = store.connect(each.url, each.schema)
            try:
                st.migrate()
            finally:
                st.close()
        sqlite_cols, pg_cols = ({t: columns(d, t) for t in TABLES} for d in dbs)
        assert all(sqlite_cols.values())
        assert sqlite_cols == pg_cols
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def test_a_write_queued_behind_a_slow_commit_leads_its_own_batch_beside_it() -> None:
    """With several leaders allowed, writes queued behind a commit that does not return (a
    slow fsync) stop waiting for it after the hedge and commit in a batch of their own; with
    one leader they wait. The held commit still completes afterwards."""
    from tests.support import wait_until

    for leaders in (2, 1):
        batches: list[list[str]] = []
        gate = threading.Event()

        def execute(writes, batches=batches, gate=gate):
            names = [name for ((name, _),) in writes]
            batches.append(names)
            if names == ["held"]:
                gate.wait(30)  # the commit in flight that does not return
            return [[[name]] for name in names]

        committer = groupcommit.GroupCommitter(execute, leaders=leaders, hedge_s=0.01)
        results: dict[str, object] = {}

        def submit(name: str, committer=committer, results=results) -> None:
            results[name] = committer.submit([(name, {})])[0]

        held = threading.Thread(target=submit, args=("held",))
        held.start()
        wait_until(lambda batches=batches: batches == [["held"]], what="the held commit")
        others = [threading.Thread(target=submit, args=(n,)) for n in ("a", "b", "c")]
        for t in others:
            t.start()
        if leaders == 2:
            # One of them hedged and took the others along: one batch beside the held one.
            wait_until(lambda results=results: len(results) == 3, what="the hedged batch")
            assert sorted(batches[1]) == ["a", "b", "c"] and "held" not in results
        else:
            wait_until(lambda committer=committer: len(committer._queue) == 3, what="three waiters")
            assert batches == [["held"]] and not results
        gate.set()
        for t in [held, *others]:
            t.join()
        assert results == {"held": ["held"], "a": ["a"], "b": ["b"], "c": ["c"]}
        assert sum(len(b) for b in batches) == 4  # every write committed exactly once


def test_group_committer_refuses_zero_leaders() -> None:
    with pytest.raises(ValueError, match="leaders must be >= 1"):
        groupcommit.GroupCommitter(lambda writes: [], leaders=0)


def test_a_claim_starts_nothing_from_a_queue_paused_since_its_settings_were_read(db) -> None:
    """Workers read queue settings about once a second; the claim itself re-checks the pause,
    so a pause made by any process holds from the moment it is committed."""
    st = store.connect(db.url, db.schema)
    try:
        st.migrate()
        for wid in ("q1", "q2"):
            st.insert_workflow(
                records.NewWorkflow(
                    workflow_id=wid,
                    name="job",
                    inputs="{}",
                    status="ENQUEUED",
                    application_version="v",
                    application_id="a",
                    executor_id="x",
                    started_at=1,
                    queue_name="q",
                )
            )
        st.queues.set_queue_paused("q", True)
        assert st.queues.dequeue("q", "v", "x", 10) == []
        assert st.queues.dequeue("q", "v", "x", 10, concurrency=5) == []
        assert st.queues.dequeue_partitioned("q", "v", "x", 10, 1) == []
        st.queues.set_queue_paused("q", False)
        assert sorted(r.workflow_id for r in st.queues.dequeue("q", "v", "x", 10)) == ["q1", "q2"]
    finally:
        st.close()
