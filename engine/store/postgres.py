"""Postgres backend (psycopg 3 + psycopg_pool).

One dedicated autocommit connection carries every write: a lone write is one round trip and
one commit; a batch from the group committer is sent in pipeline mode inside one transaction,
so N workflows' checkpoints cost one round trip and one fsync. Reads use a pool. Statements are
prepared by psycopg after a few executions (its prepare_threshold), which the hot queries reach
at once. Tables live in a schema of their own (``search_path`` set per connection).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from engine.store import base, groupcommit

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CONNECT_TIMEOUT_S = 10
POOL_MAX = 8


def check_schema_name(schema: str) -> str:
    if not _IDENTIFIER.match(schema):
        raise ValueError(
            f"schema {schema!r} is not a valid schema name; use letters, digits and "
            "underscores, starting with a letter or underscore (at most 63 characters)"
        )
    return schema


class PostgresStore(base.Store):
    dialect = "postgres"

    def __init__(self, url: str, schema: str = "waymark") -> None:
        super().__init__()
        self.url = url
        self.schema = check_schema_name(schema)
        self._search_path = pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema))
        self._writer: psycopg.Connection[Any] | None = None
        self._writer_lock = threading.Lock()
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX,
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

    def _writer_conn(self) -> psycopg.Connection[Any]:
        conn = self._writer
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            conn = self._writer = self._connect()
        return conn

    def _execute_batch(self, statements: Sequence[groupcommit.Statement]) -> list[list[Any]]:
        conn = self._writer_conn()
        try:
            if len(statements) == 1:
                sql, params = statements[0]
                cur = conn.execute(sql, params)  # autocommit: one round trip, one commit
                return [cur.fetchall() if cur.description else []]
            cursors = []
            with conn.pipeline(), conn.transaction():
                for sql, params in statements:
                    cur = conn.cursor()
                    cur.execute(sql, params)
                    cursors.append(cur)
            return [cur.fetchall() if cur.description else [] for cur in cursors]
        except psycopg.OperationalError:
            conn.close()  # reconnect on the next batch
            raise

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
                    (version, name, base.now_ms()),
                )

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._pool.close()
