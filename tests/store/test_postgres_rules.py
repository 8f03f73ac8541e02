"""The Postgres backend to the letter: the libpq fast path (placeholders, parameters, typed
rows, errors), the merged ``write_batch`` and its bookkeeping, the batch paths of
``_execute_batch`` and the writer connections they use, migrations, LISTEN, and the checks
and descriptions it gives. The store's operations themselves are in test_store_rules.py.

Every test here is a Postgres test (the file name carries "postgres" for ``-k postgres``);
those that need the server skip with the reason when it is unreachable, as conftest's do.
"""

from __future__ import annotations

import threading
import types
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest

from engine import clock, signals
from engine.store import base, postgres, records
from engine.store.pgwire import Wire, _encode, positional
from tests.conftest import PG_URL, drop_schema, require_postgres
from tests.store import test_store
from tests.store.test_store_rules import NOW, new
from tests.support import wait_until


@pytest.fixture
def schema() -> Iterator[str]:
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    drop_schema(name)


@pytest.fixture
def pg(schema: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[postgres.PostgresStore]:
    monkeypatch.setattr(clock, "now_ms", lambda: NOW)
    store = postgres.PostgresStore(PG_URL, schema)
    store.ready()
    yield store
    store.close()


# -- pgwire --------------------------------------------------------------------------------------


def test_postgres_placeholders_are_numbered_once_per_name() -> None:
    assert positional("SELECT %(a)s, %(b)s, %(a)s, %(c_1)s") == (
        "SELECT $1, $2, $1, $3",
        ("a", "b", "c_1"),
    )
    assert positional("SELECT 1") == ("SELECT 1", ())


def test_postgres_parameters_are_sent_as_text() -> None:
    assert _encode(None) is None
    assert _encode("é") == "é".encode()
    assert _encode(True) == b"true" and _encode(False) == b"false"
    assert _encode(12) == b"12" and _encode(1.5) == b"1.5"
    with pytest.raises(TypeError) as info:
        _encode([1])
    assert str(info.value) == "cannot send a list as a query parameter"


def test_postgres_rows_come_back_typed_by_column(schema: str) -> None:
    queries = {
        "typed": "SELECT true AS t, false AS f, 8::int8 AS i8, 2::int2 AS i2, 4::int4 AS i4,"
        " 'x'::text AS s, NULL::int8 AS n, 1.5::float8 AS fl, %(p)s::text AS p",
        "none": "SELECT 1 AS one WHERE false",
        "bad": "SELECT nope FROM nowhere",
    }
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        wire = Wire(conn, queries)
        expected = {
            "t": True,
            "f": False,
            "i8": 8,
            "i2": 2,
            "i4": 4,
            "s": "x",
            "n": None,
            "fl": "1.5",
            "p": "é",
        }
        assert wire.run("typed", {"p": "é"}) == [expected]
        assert wire.run("typed", {"p": "é"}) == [expected]  # prepared once, run again
        assert list(wire._prepared) == ["typed"]
        assert wire._prepared["typed"].key == b"waymark_typed"
        assert wire.run("none", {}) == []
        with pytest.raises(psycopg.errors.UndefinedTable):
            wire.run("bad", {})


def test_postgres_a_lost_connection_says_so(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        wire = Wire(conn, {"one": "SELECT 1 AS one"})
        pid = conn.info.backend_pid
        with psycopg.connect(PG_URL, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as info:
            wire.run("one", {})
        assert str(info.value).startswith("the connection to the server was lost: ")
        assert str(info.value) != "the connection to the server was lost: "


# -- merging -------------------------------------------------------------------------------------


def test_postgres_which_writes_merge() -> None:
    step = ("record_step", {})
    assert postgres.mergeable([step])
    assert postgres.mergeable([step, ("delete_message", {}), ("notify", {})])
    assert not postgres.mergeable([])
    assert not postgres.mergeable([("cancel_workflow", {})])
    assert not postgres.mergeable([("insert_workflow", {}), ("delete_message", {})])
    assert not postgres.mergeable([step, ("cancel_workflow", {})])
    assert postgres.mergeable([("finish_workflow", {}), ("notify", {})])
    # A workflow's last step and its final status: two merged kinds in one write.
    assert postgres.mergeable([step, ("finish_workflow", {}), ("notify", {})])
    assert not postgres.mergeable([step, ("delete_message", {}), ("set_workflow_traceback", {})])


def test_postgres_merge_payload_and_results_pair_each_write_with_its_row() -> None:
    writes = [
        [("insert_workflow", {"workflow_id": "a", "name": "wf"})],
        [("record_step", {"workflow_id": "a", "step_id": 1}), ("notify", {"payload": "x"})],
        [("insert_workflow", {"workflow_id": "a", "name": "wf"})],  # the same key again
        [("finish_workflow", {"workflow_id": "b"})],
    ]
    payload = postgres.merge_payload(writes)
    assert payload == {
        "insert_workflow": (
            '[{"workflow_id": "a", "name": "wf"}, {"workflow_id": "a", "name": "wf"}]'
        ),
        "record_step": '[{"workflow_id": "a", "step_id": 1}]',
        "finish_workflow": '[{"workflow_id": "b"}]',
        "send_message": "[]",
        "delete_message": "[]",
        "notify": '[{"payload": "x"}]',
    }
    inserted = {"kind": "insert_workflow", "workflow_id": "a", "name": "wf"}
    stepped = {"kind": "record_step", "workflow_id": "a", "step_id": 1}
    assert postgres.merge_results(writes, [inserted, stepped]) == [
        [[inserted]],
        [[stepped], []],
        [[]],  # only one of two writes of one key gets the row
        [[]],
    ]


def test_postgres_schema_names_are_identifiers() -> None:
    for good in ("waymark", "_x", "A" * 63, "t_0123"):
        assert postgres.check_schema_name(good) == good
    for bad in ("", "1abc", "a-b", "A" * 64, 'x"; DROP'):
        with pytest.raises(ValueError) as info:
            postgres.check_schema_name(bad)
        assert str(info.value) == (
            f"schema {bad!r} is not a valid schema name; use letters, digits and "
            "underscores, starting with a letter or underscore (at most 63 characters)"
        )


def test_postgres_describe_hides_the_password() -> None:
    shown = types.SimpleNamespace(url="postgresql://me:s3cret@db:5432/app", schema="s")
    assert postgres.PostgresStore.describe(shown) == "postgresql://me:***@db:5432/app (schema s)"  # type: ignore[arg-type]
    plain = types.SimpleNamespace(url="postgresql://me@db/app", schema="w")
    assert postgres.PostgresStore.describe(plain) == "postgresql://me@db/app (schema w)"  # type: ignore[arg-type]


def test_postgres_errors_are_told_apart(pg: postgres.PostgresStore) -> None:
    assert pg.is_transient(psycopg.OperationalError("down"))
    assert pg.is_transient(psycopg_pool.PoolTimeout("starved"))
    assert not pg.is_transient(psycopg.errors.UniqueViolation("dup"))
    unique = psycopg.errors.UniqueViolation('violates "workflow_status_dedup_idx" deduplication_id')
    assert pg._is_unique_violation(unique, "deduplication_id")
    assert not pg._is_unique_violation(unique, "debounce_key")
    assert not pg._is_unique_violation(
        psycopg.OperationalError("deduplication_id"), "deduplication_id"
    )
    assert pg._notify("p") == [("notify", {"channel": f"waymark_{pg.schema}", "payload": "p"})]


# -- batches and writer connections ------------------------------------------------------------


def test_postgres_every_batch_path_returns_each_writes_rows(pg: postgres.PostgresStore) -> None:
    insert = base.workflow_statement
    step = base.step_statement
    # One statement: autocommit on a plain writer.
    assert pg._execute_batch([[insert(new("a"))]]) == [[[{"workflow_uuid": "a"}]]]
    # Only mergeable writes: one write_batch statement, on a merging writer.
    merged = pg._execute_batch(
        [
            [insert(new("b"))],
            [step(records.NewStep("a", 1, "s", "1", None, NOW))],
        ]
    )
    assert [len(w) for w in merged] == [1, 1]
    assert merged[0][0][0]["workflow_id"] == "b"
    assert (merged[1][0][0]["status"], merged[1][0][0]["owner"]) == ("PENDING", "exec-1")
    # Mixed kinds: one pipelined transaction, the mergeable ones still merged.
    mixed = pg._execute_batch(
        [
            [insert(new("c"))],
            [("cancel_workflow", {"workflow_id": "a", "now": NOW})],
            [insert(new("d"))],
            [*pg._notify("hello")],
        ]
    )
    assert mixed[0][0][0]["workflow_id"] == "c" and mixed[2][0][0]["workflow_id"] == "d"
    assert mixed[1] == [[{"workflow_uuid": "a"}]]
    assert mixed[3] == [[{"pg_notify": ""}]]
    # Mixed with a single mergeable write: nothing to merge.
    lone = pg._execute_batch(
        [[insert(new("e"))], [("cancel_workflow", {"workflow_id": "e", "now": NOW})]]
    )
    assert lone == [[[{"workflow_uuid": "e"}]], [[{"workflow_uuid": "e"}]]]
    for workflow_id, status in (("b", "PENDING"), ("c", "PENDING"), ("a", "CANCELLED")):
        got = pg.get_workflow(workflow_id)
        assert got is not None and got.status == status
    # The writers are kept, by kind, for the next batches.
    assert len(pg._idle[False]) == 1 and len(pg._idle[True]) == 1
    assert len(pg._writers) == 2
    (merging,) = pg._idle[True]
    assert merging.conn.execute("SHOW enable_seqscan").fetchone() == {"enable_seqscan": "off"}
    (plain,) = pg._idle[False]
    assert plain.conn.execute("SHOW enable_seqscan").fetchone() == {"enable_seqscan": "on"}


def test_postgres_a_failed_transaction_drops_its_connection(pg: postgres.PostgresStore) -> None:
    pg.insert_workflow(new("a"))
    with pytest.raises(psycopg.errors.NotNullViolation):
        pg._execute_batch(
            [
                [base.workflow_statement(new("x"))],
                [("cancel_workflow", {"workflow_id": "a", "now": NOW})],
                [("record_step", {"workflow_id": "a"})],  # no step number: refused
            ]
        )
    assert pg.get_workflow("x") is None  # rolled back
    # Failed mid-transaction: that connection is closed and forgotten, the others kept.
    assert pg._idle[True] == [] and len(pg._idle[False]) == 1
    assert pg._writers == pg._idle[False] and not pg._writers[0].conn.closed
    pg._execute_batch([[base.workflow_statement(new("y"))]])  # a fresh writer
    assert pg.get_workflow("y") is not None


def test_postgres_a_closed_idle_writer_is_replaced(pg: postgres.PostgresStore) -> None:
    pg.insert_workflow(new("a"))
    (wire,) = pg._idle[False]
    wire.conn.close()
    pg.insert_workflow(new("b"))
    assert wire not in pg._writers and len(pg._writers) == 1
    assert pg._idle[False][0] is not wire


def test_postgres_closing_leaves_a_writer_in_use_to_its_batch(
    pg: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch in flight when the store closes keeps its connection to the end (closed under
    a running query, libpq crashes), which then closes it; idle writers close at once."""
    pg.insert_workflow(new("a"))
    (idle,) = pg._idle[False]
    monkeypatch.setitem(pg.queries, "nap", "SELECT pg_sleep(0.3)")
    done: list[Any] = []
    batch = threading.Thread(target=lambda: done.append(pg._execute_batch([[("nap", {})]])))
    batch.start()
    wait_until(lambda: not pg._idle[False], what="the batch to take the writer")
    pg.close()
    (busy,) = pg._writers
    assert busy is idle and not busy.conn.closed  # still running its query
    batch.join(10)
    assert done == [[[[{"pg_sleep": ""}]]]] and busy.conn.closed and pg._writers == []


def test_postgres_a_lone_bad_statement_keeps_the_writer(pg: postgres.PostgresStore) -> None:
    queued = {"status": "ENQUEUED", "queue_name": "q", "deduplication_id": "d", "executor_id": None}
    pg.insert_workflow(new("a", **queued))
    (wire,) = pg._idle[False]
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg._execute_batch([[base.workflow_statement(new("b", **queued))]])
    assert pg._idle[False] == [wire] and not wire.conn.closed  # autocommit: nothing left open


def test_postgres_one_writer_uses_one_connection_and_no_merging(schema: str) -> None:
    store = postgres.PostgresStore(PG_URL, schema, one_writer=True)
    try:
        store.ready()
        assert (store.commit_leaders, store.commit_hedge_s) == (1, None)
        assert store._committer._max_leaders == 1
        assert store._pool.max_size == postgres.POOL_MAX_ONE_WRITER
        store._execute_batch(
            [[base.workflow_statement(new("a"))], [base.workflow_statement(new("b"))]]
        )
        assert store._idle[True] == [] and len(store._idle[False]) == 1
        # Unmerged, a final status goes with the last step's insert only when that row is
        # this transaction's (finish_workflow's after_step, in a pipelined transaction).
        test_store.finish_after_step_cases(store)
    finally:
        store.close()
    shared = postgres.PostgresStore(PG_URL, schema)
    try:
        assert (shared.commit_leaders, shared.commit_hedge_s) == (8, 0.003)
        assert shared._pool.max_size == postgres.POOL_MAX
        assert shared.channel == f"waymark_{schema}"
    finally:
        shared.close()


# -- migrations, LISTEN, closing -----------------------------------------------------------------


def test_postgres_migrations_are_recorded_once(pg: postgres.PostgresStore) -> None:
    pg.migrate()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT version, name, applied_at FROM "{pg.schema}".waymark_migrations ORDER BY 1'
        ).fetchall()
    assert rows == [(v, name, NOW) for v, name, _ in base.load_migrations("postgres")]


def test_postgres_listen_delivers_this_schemas_notifications(pg: postgres.PostgresStore) -> None:
    got: list[str] = []
    stop = threading.Event()
    listener = threading.Thread(target=pg.listen, args=(got.append, stop))
    listener.start()
    try:
        # LISTEN starts at some point after the thread: notify until one arrives.
        wait_until(lambda: pg.announce_freed() or got, what="a notification")
    finally:
        stop.set()
        listener.join()
    assert set(got) == {signals.ENQUEUED}


def test_postgres_close_closes_every_connection(schema: str) -> None:
    store = postgres.PostgresStore(PG_URL, schema)
    store.ready()
    store.insert_workflow(new("a"))
    store.get_workflow("a")
    writers = list(store._writers)
    store.close()
    assert store._closed and store._pool.closed
    assert writers and all(w.conn.closed for w in writers)


class FakeStop:
    """A stop event that records each back-off wait and is set after ``waits`` of them."""

    def __init__(self, waits: int) -> None:
        self.waits = waits
        self.waited: list[float] = []

    def is_set(self) -> bool:
        return len(self.waited) >= self.waits

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        return self.is_set()


class FakeListening:
    """A LISTEN connection that delivers ``payloads``, then is lost."""

    def __init__(self, payloads: list[str]) -> None:
        self.payloads = payloads
        self.executed: list[Any] = []
        self.timeouts: list[float] = []

    def __enter__(self) -> FakeListening:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, statement: Any) -> None:
        self.executed.append(statement)

    def notifies(self, timeout: float) -> Iterator[Any]:
        self.timeouts.append(timeout)
        for payload in self.payloads:
            yield types.SimpleNamespace(payload=payload)
        raise psycopg.OperationalError("server closed the connection")


def test_postgres_listen_reconnects_with_a_growing_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from psycopg import sql as pgsql

    listening = FakeListening(["a", "b"])
    connects: list[tuple[str, dict[str, Any]]] = []

    def connect(url: str, **kwargs: Any) -> FakeListening:
        connects.append((url, kwargs))
        if len(connects) in (8,):  # the eighth attempt gets through
            return listening
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(postgres.psycopg, "connect", connect)
    got: list[str] = []
    stop = FakeStop(waits=10)
    store = types.SimpleNamespace(url="postgresql://u@h/d", channel="waymark_s")
    postgres.PostgresStore.listen(store, got.append, stop)  # type: ignore[arg-type]
    # Doubling to at most 10 s while down; back to 0.5 s once a connection worked.
    assert stop.waited == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 0.5, 1.0, 2.0]
    assert got == ["a", "b"]
    assert listening.executed == [pgsql.SQL("LISTEN {}").format(pgsql.Identifier("waymark_s"))]
    assert listening.timeouts == [1.0]
    assert connects[0] == ("postgresql://u@h/d", {"autocommit": True, "connect_timeout": 10})


def test_postgres_listen_returns_once_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(url: str, **kwargs: Any) -> FakeListening:
        raise AssertionError("a stopped listener connects to nothing")

    monkeypatch.setattr(postgres.psycopg, "connect", connect)
    stop = threading.Event()
    stop.set()
    store = types.SimpleNamespace(url="postgresql://u@h/d", channel="waymark_s")
    assert postgres.PostgresStore.listen(store, print, stop) is None  # type: ignore[arg-type]


def test_postgres_an_upgrade_applies_only_the_new_migrations(
    pg: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = base.load_migrations("postgres")
    extra = (
        9999,
        "9999_extra.sql",
        "CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (1);",
    )
    monkeypatch.setattr(base, "load_migrations", lambda dialect: [*known, extra])
    pg.migrate()
    pg.migrate()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        assert conn.execute(f'SELECT x FROM "{pg.schema}".extra').fetchall() == [(1,)]
        last = conn.execute(
            f'SELECT version, name FROM "{pg.schema}".waymark_migrations ORDER BY 1 DESC LIMIT 1'
        ).fetchall()
    assert last == [(9999, "9999_extra.sql")]
