"""SQLite backend (stdlib sqlite3): WAL, synchronous=FULL, one writer connection.

Durability matches Postgres defaults: in WAL mode with ``synchronous=FULL`` every commit is
fsynced before it returns. Writes go through one connection (SQLite has one writer anyway);
reads use one connection per thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from engine import clock
from engine.store import base, groupcommit

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)
BUSY_TIMEOUT_S = 30.0


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` → the file path."""
    path = url.removeprefix("sqlite://")
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        raise ValueError(
            f"database_url {url!r} names no file; Waymark needs a file that several "
            "connections share, e.g. sqlite:///waymark.sqlite3"
        )
    return path


class SQLiteStore(base.Store):
    dialect = "sqlite"
    poll_interval = 0.1  # SQLite cannot push other processes' changes: waiters poll

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._writer = self._connect()
        # Held while a batch runs: close() waits for it (the committer thread may be inside
        # one), since closing a connection under a running statement crashes the process.
        self._writer_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._exclusive_conn: sqlite3.Connection | None = None
        self._exclusive_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (a lone statement autocommits).
        # check_same_thread=False: the group-commit leader changes threads, one at a time.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        return conn

    def _execute_batch(
        self, writes: Sequence[Sequence[groupcommit.Statement]]
    ) -> list[list[list[Any]]]:
        conn, queries = self._writer, self.queries
        with self._writer_lock:
            if len(writes) == 1 and len(writes[0]) == 1:
                name, params = writes[0][0]  # a lone statement autocommits
                return [[conn.execute(queries[name], params).fetchall()]]
            conn.execute("BEGIN IMMEDIATE")
            try:
                results = [
                    [conn.execute(queries[name], params).fetchall() for name, params in write]
                    for write in writes
                ]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return results

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        return self._reader().execute(sql, params).fetchall()

    def _list_param(self, values: Sequence[str] | None) -> Any:
        return json.dumps(list(values)) if values is not None else None

    def attribute_filter(self, attributes: Mapping[str, Any]) -> str:
        # Pairs of (key, canonical JSON value), as the 0007 triggers store them.
        pairs = [[k, json.dumps(v, ensure_ascii=False)] for k, v in attributes.items()]
        return json.dumps(pairs, ensure_ascii=False)

    def is_transient(self, exc: BaseException) -> bool:
        # Another process held the write lock past the busy timeout.
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        )

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _is_unique_violation(self, exc: Exception, column: str) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and column in str(exc)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[Callable[..., list[Any]]]:
        # A connection of its own: BEGIN IMMEDIATE takes SQLite's one write lock, so what the
        # transaction counts cannot change under it (other writers wait, busy_timeout).
        with self._exclusive_lock:
            if self._exclusive_conn is None:
                self._exclusive_conn = self._connect()
            conn = self._exclusive_conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield lambda query, **params: conn.execute(self.queries[query], params).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def migrate(self) -> None:
        conn = self._connect()
        try:
            # BEGIN IMMEDIATE takes the write lock first: two processes migrating at once
            # serialize here, and the second finds the work done.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS waymark_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM waymark_migrations")}
            for version, name, sql in base.load_migrations(self.dialect):
                if version in applied:
                    continue
                for statement in _split_statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO waymark_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, clock.now_ms()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        if self._writer_lock.acquire(timeout=BUSY_TIMEOUT_S):  # the batch in flight ends first
            try:
                self._writer.close()
            finally:
                self._writer_lock.release()
        with self._exclusive_lock:
            if self._exclusive_conn is not None:
                self._exclusive_conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()


def _split_statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first, so run statement by statement;
    # sqlite3.complete_statement knows where one ends (semicolons inside strings included).
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    return statements
