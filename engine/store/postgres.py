"""Postgres backend (psycopg 3 + psycopg_pool).

Dedicated autocommit connections carry the writes, one per group-commit leader in flight (up
to ``commit_leaders`` of each kind, opened on demand and reused): a lone write is one prepared
statement, one round trip and one commit; a batch of many workflows' checkpoints is merged
into one statement (``write_batch``): one round trip and one fsync for all of them
(``one_writer=True``: a single writer connection and one leader, a batch runs as one
pipelined transaction instead; for processes with few concurrent writes, such as Celery
worker processes, where connections matter more). Reads use a pool. Statements are
prepared by psycopg after a few executions (its prepare_threshold), which the hot queries reach
at once. Tables live in a schema of their own (``search_path`` set per connection).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from engine import clock
from engine.store import base, groupcommit, pgwire

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CONNECT_TIMEOUT_S = 10
POOL_MAX = 8
POOL_MAX_ONE_WRITER = 2  # readers of a ``one_writer`` store: its budget is 3 connections at most
# Writes that a batch merges into the one "write_batch" statement (each kind is a JSON array
# parameter named after its query), and the columns by which each write finds its row in the
# result.
MERGEABLE: dict[str, tuple[str, ...]] = {
    "insert_workflow": ("workflow_id", "name"),
    "record_step": ("workflow_id", "step_id"),
    "finish_workflow": ("workflow_id",),
    "send_message": ("message_id",),
}
# Statements merged with the one before them in their write, returning no rows of their own:
# a recv's delete of the message its step holds (it joins the steps the same statement
# inserted, so it deletes only what its own step recorded), and a NOTIFY (after any kind).
RIDERS: dict[str, frozenset[str]] = {
    "delete_message": frozenset({"record_step"}),
    "notify": frozenset(MERGEABLE),
}


def mergeable(write: Sequence[groupcommit.Statement]) -> bool:
    """Whether the write is merged kinds, each followed only by its riders."""
    if not write or write[0][0] not in MERGEABLE:
        return False
    kind = write[0][0]
    for name, _ in write[1:]:
        if name in MERGEABLE:
            kind = name
        elif not (name in RIDERS and kind in RIDERS[name]):
            return False
    return True


def check_schema_name(schema: str) -> str:
    if not _IDENTIFIER.match(schema):
        raise ValueError(
            f"schema {schema!r} is not a valid schema name; use letters, digits and "
            "underscores, starting with a letter or underscore (at most 63 characters)"
        )
    return schema


class PostgresStore(base.Store):
    dialect = "postgres"
    pushes_changes = True  # LISTEN/NOTIFY
    # Measured (W2, interleaved with the floor, 2-core machine, see README): under heavy load
    # (commits 5-6 ms) one leader did 0.31-0.48x the concurrent floor, 8 leaders with a 1 ms
    # hedge 0.37-0.71x; on a quiet machine (commits ~1 ms) one leader 0.92-0.95x, a 1 ms hedge
    # 0.74-0.86x (it fired on ordinary commits: more, smaller batches), a 3 ms hedge 0.92x.
    # So 3 ms: several commits in flight only when the disk is slow. See groupcommit.
    commit_leaders = 8
    commit_hedge_s: float | None = 0.003
    commit_relay = True  # a round trip per batch: see groupcommit

    def __init__(self, url: str, schema: str = "waymark", *, one_writer: bool = False) -> None:
        if one_writer:  # one writer connection: one commit in flight (before the committer)
            self.commit_leaders = 1
            self.commit_hedge_s = None
        super().__init__()
        # The merged statement needs a connection of its own (planner settings, below).
        self._merge_writes = not one_writer
        self.url = url
        self.schema = check_schema_name(schema)
        self.channel = f"waymark_{schema}"
        self._search_path = pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema))
        # Writer connections not in use, by kind (True: for merged batches). Each group-commit
        # leader takes one for its batch and gives it back.
        self._idle: dict[bool, list[pgwire.Wire]] = {False: [], True: []}
        self._writers: list[pgwire.Wire] = []
        self._writers_lock = threading.Lock()
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX if self._merge_writes else POOL_MAX_ONE_WRITER,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=self._configure,
            timeout=CONNECT_TIMEOUT_S,
            open=False,
            name=f"waymark-{schema}",
        )
        self._pool.open(wait=False)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self._search_path)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S
        )
        self._configure(conn)
        return conn

    def _execute_batch(
        self, writes: Sequence[Sequence[groupcommit.Statement]]
    ) -> list[list[list[Any]]]:
        single = len(writes) == 1 and len(writes[0]) == 1
        may_merge = self._merge_writes and not single
        mergeables = [i for i, w in enumerate(writes) if mergeable(w)] if may_merge else []
        # Worth one write_batch statement: two merged statements or more (a workflow's last
        # step and its end are two). It runs on the connections set up for it.
        merged = sum(name in MERGEABLE for i in mergeables for name, _ in writes[i]) > 1
        wire = self._writer(merged)
        conn = wire.conn
        try:
            if single:
                name, params = writes[0][0]
                return [[wire.run(name, params)]]  # autocommit: one round trip
            if merged and len(mergeables) == len(writes):
                rows = wire.run("write_batch", merge_payload(writes))
                return merge_results(writes, rows)
            # Other kinds in the mix: one transaction, pipelined (BEGIN..COMMIT in one sync),
            # the mergeable writes still merged into one write_batch statement.
            merging = set(mergeables) if merged else set()
            together = [writes[i] for i in sorted(merging)]
            with conn.pipeline():
                conn.execute("BEGIN")
                batch = (
                    conn.execute(self.queries["write_batch"], merge_payload(together))
                    if together
                    else None
                )
                cursors = {
                    i: [conn.execute(self.queries[name], params) for name, params in write]
                    for i, write in enumerate(writes)
                    if i not in merging
                }
                conn.execute("COMMIT")
            results: dict[int, list[list[Any]]] = {}
            if batch is not None:
                merged_rows = merge_results(together, batch.fetchall())
                results = dict(zip(sorted(merging), merged_rows, strict=True))
            for i, cs in cursors.items():
                results[i] = [c.fetchall() if c.description else [] for c in cs]
            return [results[i] for i in range(len(writes))]
        except BaseException:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE or conn.broken:
                conn.close()  # unknown state (failed mid-pipeline, lost): start afresh
            raise
        finally:
            with self._writers_lock:
                if conn.closed or self._closed:
                    conn.close()  # closed meanwhile: this batch's connection closes after it
                    self._writers.remove(wire)
                else:
                    self._idle[merged].append(wire)

    def _writer(self, merged: bool) -> pgwire.Wire:
        with self._writers_lock:
            idle = self._idle[merged]
            while idle:
                wire = idle.pop()
                if not wire.conn.closed:
                    return wire
                self._writers.remove(wire)
        conn = self._connect()
        if merged:
            # write_batch is prepared once and then runs a generic plan, made while the
            # tables are small or still unanalyzed; for such a table a sequential scan (or
            # hash join) of workflow_status looks cheapest, and it stays cached while the
            # table grows: each batch got slower with every workflow recorded. Every lookup in
            # it is by primary key, so allow only index nested loops: the plan is then right
            # at any size (measured flat over 18,000 workflows).
            for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
                conn.execute(f"SET {setting} = off")
        wire = pgwire.Wire(conn, self.queries)
        with self._writers_lock:
            self._writers.append(wire)
        return wire

    def is_transient(self, exc: BaseException) -> bool:
        # Connection refused or lost, server shutting down or restarting, pool starved: all
        # OperationalError (or the pool's timeout). Constraint and syntax errors are not.
        return isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout)

    def describe(self) -> str:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url) + f" (schema {self.schema})"

    def _is_unique_violation(self, exc: Exception, column: str) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation) and column in str(exc)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[Callable[..., list[Any]]]:
        with self._pool.connection() as conn, conn.transaction():
            yield lambda query, **params: conn.execute(self.queries[query], params).fetchall()

    def _notify(self, payload: str) -> list[groupcommit.Statement]:
        return [("notify", {"channel": self.channel, "payload": payload})]

    def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def migrate(self) -> None:
        lock_key = int.from_bytes(
            hashlib.sha256(f"waymark-migrate:{self.schema}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        with self._connect() as conn, conn.transaction():
            # One migrator at a time per schema, across processes; released at commit.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            conn.execute(
                pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema))
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS waymark_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            applied = {
                row["version"] for row in conn.execute("SELECT version FROM waymark_migrations")
            }
            for version, name, script in base.load_migrations(self.dialect):
                if version in applied:
                    continue
                conn.execute(script.encode())  # no parameters: sent as one multi-statement query
                conn.execute(
                    "INSERT INTO waymark_migrations (version, name, applied_at) "
                    "VALUES (%s, %s, %s)",
                    (version, name, clock.now_ms()),
                )

    def listen(self, on_payload: Any, stop: Any) -> None:
        """LISTEN on this schema's channel and pass each payload on, reconnecting with backoff."""
        backoff = 0.5
        while not stop.is_set():
            try:
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                ) as conn:
                    conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self.channel)))
                    backoff = 0.5
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            on_payload(notify.payload)
            except psycopg.Error:
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def close(self) -> None:
        # A writer connection in use (a batch in flight, perhaps on the committer thread) is
        # closed by its batch when done: closing it under a running query would crash libpq.
        with self._writers_lock:
            self._closed = True
            idle = [wire for wires in self._idle.values() for wire in wires]
            for wires in self._idle.values():
                wires.clear()
            for wire in idle:
                self._writers.remove(wire)
        for wire in idle:
            wire.conn.close()
        self._pool.close()


def merge_payload(writes: Sequence[Sequence[groupcommit.Statement]]) -> dict[str, str]:
    """write_batch's parameters: per kind, the JSON array of its writes' parameters."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {name: [] for name in (*MERGEABLE, *RIDERS)}
    for write in writes:
        for name, params in write:
            by_kind[name].append(params)
    return {name: json.dumps(params) for name, params in by_kind.items()}


def merge_results(
    writes: Sequence[Sequence[groupcommit.Statement]], rows: Sequence[Mapping[str, Any]]
) -> list[list[list[Any]]]:
    """Each write's rows, per statement, found by its key among write_batch's rows."""
    by_key: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        kind = row["kind"]
        by_key[(kind, *(row[k] for k in MERGEABLE[kind]))] = row
    results: list[list[list[Any]]] = []
    for write in writes:
        each: list[list[Any]] = []
        for name, params in write:
            if name not in MERGEABLE:
                each.append([])  # riders return nothing
                continue
            # pop: of two writes with one key (two starts of one ID), one gets the row.
            found = by_key.pop((name, *(params[k] for k in MERGEABLE[name])), None)
            each.append([found] if found is not None else [])
        results.append(each)
    return results
