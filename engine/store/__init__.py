"""Storage backends behind one interface; ``connect`` picks one from a database URL."""

from __future__ import annotations

from engine.store.base import Store


def connect(database_url: str, schema: str = "waymark") -> Store:
    if database_url.startswith("sqlite:"):
        from engine.store import sqlite

        return sqlite.SQLiteStore(sqlite.path_from_url(database_url))
    if database_url.startswith(("postgresql:", "postgres:")):
        from engine.store import postgres

        return postgres.PostgresStore(database_url, schema)
    raise ValueError(
        f"unsupported database_url {database_url!r}; use sqlite:///path/file.sqlite3 or "
        "postgresql://user@host:5432/dbname"
    )


__all__ = ["Store", "connect"]
