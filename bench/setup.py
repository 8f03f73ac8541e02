"""Fresh databases for a benchmark run, and the bare-writes floor to compare against."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from bench.cpu import CpuMeter

PG_URL = os.environ.get("WAYMARK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Target:
    backend: str
    url: str
    schema: str


@contextlib.contextmanager
def fresh_database(backend: str) -> Iterator[Target]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="waymark-bench-") as folder:
            yield Target("sqlite", f"sqlite:///{folder}/bench.sqlite3", "waymark")
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield Target("postgres", PG_URL, schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def count(target: Target, sql: str) -> int:
    """A count straight from the system tables (to watch a benchmark's progress)."""
    if target.backend == "sqlite":
        conn = sqlite3.connect(target.url.removeprefix("sqlite:///"), timeout=30)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{target.schema}"'.encode())
        row = conn.execute(sql.encode()).fetchone()
        return int(row[0]) if row else 0


_FLOOR_TABLES = (
    "CREATE TABLE wf (id TEXT PRIMARY KEY, status TEXT, inputs TEXT, output TEXT, "
    "created_at BIGINT, updated_at BIGINT)",
    "CREATE TABLE step (wf TEXT, n INTEGER, output TEXT, PRIMARY KEY (wf, n))",
)


def _floor_one_sqlite(conn: sqlite3.Connection, wid: str) -> None:
    now = time.time_ns() // 1_000_000
    conn.execute("INSERT INTO wf VALUES (?, 'PENDING', '[1]', NULL, ?, ?)", (wid, now, now))
    for n in (1, 2, 3):
        conn.execute("INSERT INTO step VALUES (?, ?, '1')", (wid, n))
    conn.execute("UPDATE wf SET status = 'SUCCESS', output = '3' WHERE id = ?", (wid,))


def _floor_one_pg(conn: psycopg.Connection, wid: str) -> None:  # type: ignore[type-arg]
    now = time.time_ns() // 1_000_000
    conn.execute("INSERT INTO wf VALUES (%s, 'PENDING', '[1]', NULL, %s, %s)", (wid, now, now))
    for n in (1, 2, 3):
        conn.execute("INSERT INTO step VALUES (%s, %s, '1')", (wid, n))
    conn.execute("UPDATE wf SET status = 'SUCCESS', output = '3' WHERE id = %s", (wid,))


def floor(backend: str, n: int, threads: int, meter: CpuMeter | None = None) -> float:
    """Seconds for ``n`` bare 3-step workflows (5 autocommitted, fsynced writes each);
    ``meter`` (entered before the call) measures the CPU of the timed part."""
    with tempfile.TemporaryDirectory(prefix="waymark-floor-") as folder:
        schema = f"floor_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            path = f"{folder}/floor.sqlite3"

            def connect() -> object:
                conn = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False, timeout=60
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                return conn

            one = _floor_one_sqlite
        else:

            def connect() -> object:
                conn = psycopg.connect(PG_URL, autocommit=True)
                conn.execute(f'SET search_path TO "{schema}"'.encode())
                return conn

            one = _floor_one_pg  # type: ignore[assignment]
        setup = connect()
        if backend == "postgres":
            setup.execute(f'CREATE SCHEMA "{schema}"'.encode())  # type: ignore[attr-defined]
        for ddl in _FLOOR_TABLES:
            setup.execute(ddl)  # type: ignore[attr-defined]
        try:
            per_thread = n // threads
            conns = [connect() for _ in range(threads)]

            def run(t: int) -> None:
                for i in range(per_thread):
                    one(conns[t], f"{t}-{i}")  # type: ignore[arg-type]

            workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
            if meter is not None:
                meter.start()
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
            if meter is not None:
                meter.stop(per_thread * threads)
            for c in conns:
                c.close()  # type: ignore[attr-defined]
            return elapsed * n / (per_thread * threads)
        finally:
            if backend == "postgres":
                setup.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())  # type: ignore[attr-defined]
            setup.close()  # type: ignore[attr-defined]
