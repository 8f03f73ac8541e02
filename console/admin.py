"""Django admin: users and groups, with roles that cannot escalate; the audit trail read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from console.models import AuditRecord

User = get_user_model()


def _code(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"  # as get_all_permissions


def _held(user: Any) -> set[str]:
    """Everything the user's groups and own permissions grant, even while it is inactive
    (get_all_permissions() is empty then, and reactivating it is one click away)."""
    granted = Permission.objects.filter(Q(user=user) | Q(group__user=user))
    return {_code(p) for p in granted.select_related("content_type")}


class ConsoleUserAdmin(UserAdmin):  # type: ignore[type-arg]
    """The `admin` role manages users but must never hand out more power than it holds:
    only a superuser may make a superuser, touch a superuser's account (its password
    included: the password page checks has_change_permission), or grant groups and
    permissions beyond the granter's own. A non-superuser may only edit users who hold no
    more than they do, so its own account cannot be lifted either."""

    def _within_reach(self, request: Any, user: Any) -> bool:
        if request.user.is_superuser:
            return True
        return not user.is_superuser and _held(user) <= request.user.get_all_permissions()

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or self._within_reach(request, obj))

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or self._within_reach(request, obj))

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, "is_superuser")

    def formfield_for_manytomany(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        # Offer only the groups and permissions the editor holds itself; anything else posted
        # is an invalid choice, so the form refuses it.
        if not request.user.is_superuser and db_field.name in ("groups", "user_permissions"):
            own = request.user.get_all_permissions()
            if db_field.name == "user_permissions":
                perms = Permission.objects.select_related("content_type")
                kwargs["queryset"] = perms.filter(pk__in=[p.pk for p in perms if _code(p) in own])
            else:
                groups = Group.objects.prefetch_related("permissions__content_type")
                kwargs["queryset"] = groups.filter(
                    pk__in=[g.pk for g in groups if {_code(p) for p in g.permissions.all()} <= own]
                )
        return super().formfield_for_manytomany(db_field, request, **kwargs)


admin.site.unregister(User)
admin.site.register(User, ConsoleUserAdmin)


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
