"""The store's named queries run on a libpq connection directly (psycopg's ``pq`` layer).

``Connection.execute`` costs about 50 µs of Python per call (a cursor, parameter adaptation,
prepared-statement bookkeeping, row objects): on the hot path (one write per step) that was
the largest share of the engine's CPU per workflow. So the group committer's writes go
straight to libpq: each query is prepared once per connection under its own name, its
parameters are sent as text (the server infers their types from the statement), and its rows
come back as dicts typed by column OID. libpq releases the GIL while it waits on the server.
Everything else (reads, migrations, LISTEN, multi-statement transactions) keeps psycopg's
ordinary API on the same connections.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import psycopg
from psycopg import pq

_PARAM = re.compile(r"%\((\w+)\)s")

# Column type OID -> decoder of its text form; any other type arrives as text.
_DECODE: dict[int, Callable[[bytes], Any]] = {
    16: lambda b: b == b"t",  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
}
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


class _Prepared(NamedTuple):
    key: bytes
    order: tuple[str, ...]  # parameter names, by position


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``%(name)s`` placeholders as ``$n`` (one number per distinct name), and the names."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _PARAM.sub(number, sql), tuple(order)


def _encode(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        return str(value).encode()
    raise TypeError(f"cannot send a {type(value).__name__} as a query parameter")


class Wire:
    """One autocommit connection and the queries prepared on it."""

    def __init__(self, conn: psycopg.Connection[Any], queries: Mapping[str, str]) -> None:
        self.conn = conn
        self._pgconn = conn.pgconn
        self._queries = queries
        self._prepared: dict[str, _Prepared] = {}

    def run(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Execute the named query (one statement, committed on its own unless inside a
        transaction this connection opened); its rows."""
        prepared = self._prepared.get(name) or self._prepare(name)
        values = [_encode(params[key]) for key in prepared.order]
        # None is NULL (libpq takes it; the stub does not say so).
        result = self._pgconn.exec_prepared(prepared.key, values)  # type: ignore[arg-type]
        return _rows(self._check(result))

    def _prepare(self, name: str) -> _Prepared:
        sql, order = positional(self._queries[name])
        key = f"waymark_{name}".encode()
        self._check(self._pgconn.prepare(key, sql.encode()))
        prepared = self._prepared[name] = _Prepared(key, order)
        return prepared

    def _check(self, result: pq.abc.PGresult) -> pq.abc.PGresult:
        if result.status not in _OK:
            if self._pgconn.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError(
                    "the connection to the server was lost: "
                    + self._pgconn.error_message.decode(errors="replace").strip()
                )
            raise psycopg.errors.error_from_result(result)
        return result


def _rows(result: pq.abc.PGresult) -> list[dict[str, Any]]:
    count = result.ntuples
    if not count:
        return []
    width = result.nfields
    names = [(result.fname(k) or b"").decode() for k in range(width)]
    decoders = [_DECODE.get(result.ftype(k)) for k in range(width)]
    rows = []
    for r in range(count):
        row: dict[str, Any] = {}
        for k in range(width):
            raw = result.get_value(r, k)
            if raw is None:
                row[names[k]] = None
            else:
                decode = decoders[k]
                row[names[k]] = decode(raw) if decode is not None else raw.decode()
        rows.append(row)
    return rows
