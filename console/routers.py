"""Send the read-only mirrors of the system tables to the source the request reads: the
engine's "waymark" database, or a source from WAYMARK_SOURCES (console/sources.py)."""

from __future__ import annotations

from typing import Any

from console import sources

SYSTEM_LABEL = "system"  # Meta.app_label of the unmanaged system-table models


class SystemTablesRouter:
    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return sources.alias() if getattr(model, "_system_table", False) else None

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return sources.alias() if getattr(model, "_system_table", False) else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # The engine migrates its own tables, and a source is never migrated: Django migrates
        # only the console's own database.
        return db != "waymark" and not db.startswith("source_")
