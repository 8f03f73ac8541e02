"""Saved views: a user names the workflow list's current filters; the nav lists that user's
views and the shared ones. Only the admin role (``console.share_views``) shares a view."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from console import filters, params
from console.http import HtmxHttpRequest
from console.models import SavedView
from console.views import bad_request

SHARE = "console.share_views"
NAME_LIMIT = 80
NAV_LIMIT = 30  # views listed in the nav


def visible(user: Any) -> QuerySet[SavedView]:
    """The user's own views and everyone's shared ones."""
    return SavedView.objects.filter(Q(owner=user) | Q(shared=True))


def nav(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the saved views for the nav (signed-in users only)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"saved_views": list(visible(user)[:NAV_LIMIT])}


def url(view: SavedView) -> str:
    return reverse("workflow_list") + (f"?{view.query}" if view.query else "")


@require_POST
@login_required
def save_view(request: HtmxHttpRequest) -> HttpResponse:
    """Name the current filters (the query string is validated as the list would)."""
    try:
        name = params.text(request.POST, "name", NAME_LIMIT)
        query = params.text(request.POST, "query", filters.ID_LIMIT)
        normalized = filters.parse(QueryDict(query)).query_string()
    except params.BadParameterError as exc:
        return bad_request(request, str(exc))
    if not name:
        return bad_request(request, "name the view (up to 80 characters)")
    shared = request.POST.get("shared") == "1"
    if shared and not request.user.has_perm(SHARE):
        return bad_request(request, "only admins share views with everyone")
    try:
        view = SavedView.objects.create(
            owner=request.user, name=name, query=normalized, shared=shared
        )
    except IntegrityError:
        return bad_request(request, f"you already have a view named {name!r}; pick another name")
    messages.success(request, f"Saved view {name!r}{' (shared)' if shared else ''}.")
    return redirect(url(view))


@require_POST
@login_required
def delete_view(request: HtmxHttpRequest, view_id: int) -> HttpResponse:
    """Its owner deletes a view; an admin may also delete a shared one."""
    view = get_object_or_404(visible(request.user), pk=view_id)
    if view.owner_id != request.user.pk and not request.user.has_perm(SHARE):
        return HttpResponse("Only its owner or an admin deletes this view.", status=403)
    view.delete()
    messages.success(request, f"Deleted view {view.name!r}.")
    return redirect("workflow_list")
