"""Storage backends behind one interface; ``connect`` picks one from a database URL."""

from __future__ import annotations

import os

from engine.store import postgres, sqlite
from engine.store.base import Store


def connect(
    database_url: str,
    schema: str = "waymark",
    retry_for_s: float | None = None,
    *,
    one_writer: bool = False,
) -> Store:
    """A store for ``database_url``; ``retry_for_s``: how long an operation retries while the
    database is unreachable (default: WAYMARK_DB_RETRY_SECONDS, else 60); ``one_writer``:
    Postgres writes on a single connection (see ``PostgresStore``)."""
    if retry_for_s is None:
        retry_for_s = float(os.environ.get("WAYMARK_DB_RETRY_SECONDS", "60"))
    if retry_for_s <= 0:
        raise ValueError(f"db_retry_seconds must be > 0, got {retry_for_s!r}")
    found: Store
    if database_url.startswith("sqlite:"):
        found = sqlite.SQLiteStore(sqlite.path_from_url(database_url))
    elif database_url.startswith(("postgresql:", "postgres:")):
        found = postgres.PostgresStore(database_url, schema, one_writer=one_writer)
    else:
        raise ValueError(
            f"unsupported database_url {database_url!r}; use sqlite:///path/file.sqlite3 or "
            "postgresql://user@host:5432/dbname"
        )
    found.retry_for_s = retry_for_s
    return found


__all__ = ["Store", "connect"]
