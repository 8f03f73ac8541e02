"""Fixtures: every engine test runs on SQLite and on Postgres, each in a fresh database.

Django is not set up here: only the console tests need it (tests/console/conftest.py), and
an acceptance test that looks at the console sets it up itself (tests.console.console_site).

Postgres comes from WAYMARK_TEST_PG_URL (default: the local server). When it is unreachable the
Postgres variants skip with the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterator

import psycopg
import pytest

from engine import Engine

PG_URL = os.environ.get("WAYMARK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_pg_error: str | None = None
_pg_checked = False


def postgres_unavailable() -> str | None:
    global _pg_checked, _pg_error
    if not _pg_checked:
        _pg_checked = True
        try:
            psycopg.connect(PG_URL, connect_timeout=3).close()
        except psycopg.Error as exc:
            _pg_error = f"PostgreSQL at {PG_URL} is unreachable: {exc}".strip()
    return _pg_error


def require_postgres() -> None:
    """Skip the test when Postgres is unreachable; with CI=true, fail it instead."""
    reason = postgres_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: Postgres tests are required)")
        pytest.skip(reason)


class Database:
    """One fresh system database: a SQLite file, or a Postgres schema of its own."""

    def __init__(self, backend: str, url: str, schema: str) -> None:
        self.backend = backend
        self.url = url
        self.schema = schema

    def raw(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run SQL directly against the system tables (to corrupt rows, check state)."""
        if self.backend == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
            try:
                rows = conn.execute(sql.replace("%s", "?"), params).fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            cur = conn.execute(sql.encode() if not params else sql, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@pytest.fixture(params=["sqlite", "postgres"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "waymark.sqlite3"
        yield Database("sqlite", f"sqlite:///{path}", "waymark")
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield Database("postgres", PG_URL, schema)
    drop_schema(schema)


def drop_schema(schema: str) -> None:
    """Drop a test's schema. A session of the test still holding a lock on its tables would
    block the drop until pytest-timeout, with no word of why: wait 30 s, then end the
    sessions that block it (the test is over: nothing of its own should still hold a lock)
    and warn naming what they were doing, so the leak is seen, not hidden. A drop can also
    wait on something that is not a lock (lock_timeout never fires; seen once under load):
    statement_timeout bounds that wait the same way."""
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(b"SET lock_timeout = '30s'")
        conn.execute(b"SET statement_timeout = '40s'")
        try:
            conn.execute(drop)
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
            pass
        blockers = conn.execute(
            "SELECT DISTINCT a.pid, a.state, a.application_name, left(a.query, 200)"
            " FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE n.nspname = %s AND l.pid <> pg_backend_pid()"
            " UNION SELECT pid, state, application_name, left(query, 200) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (schema, f"waymark-{schema}"),
        ).fetchall()
        for pid, *_ in blockers:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.execute(b"SET lock_timeout = 0")
        conn.execute(b"SET statement_timeout = 0")
        conn.execute(drop)
    warnings.warn(f"dropping {schema} waited on sessions left open: {blockers}", stacklevel=1)


@pytest.fixture
def make_engine(db: Database) -> Iterator[Callable[..., Engine]]:
    """Build engines on the test database; every one is shut down at the end."""
    made: list[Engine] = []

    def make(app_name: str = "testapp", **kwargs: object) -> Engine:
        engine = Engine(app_name, db.url, schema=db.schema, **kwargs)  # type: ignore[arg-type]
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.shutdown(timeout=5)


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()
