"""Django admin: users and groups as usual; the audit trail read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from console.models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("at", "actor", "source", "action", "ok", "outcome", "client_address")
    list_filter = ("action", "source", "ok")
    search_fields = ("actor", "reason", "outcome")
    date_hierarchy = "at"

    # Append-only: the admin can read the trail, never add to, change or delete it.
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
