"""Send the read-only mirrors of the engine's system tables to the "waymark" database."""

from __future__ import annotations

from typing import Any

SYSTEM_LABEL = "system"  # Meta.app_label of the unmanaged system-table models


class SystemTablesRouter:
    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return "waymark" if getattr(model, "_system_table", False) else None

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return "waymark" if getattr(model, "_system_table", False) else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # The engine migrates its own tables; Django never touches the "waymark" database.
        return db != "waymark"
