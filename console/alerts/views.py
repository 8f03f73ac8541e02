"""/alerts/: the rules with their state and history (everyone signed in), and for admins
(``console.manage_alerts``) create, edit, enable, disable and delete, each audited: the intent
is recorded before the change, its outcome after (as operator actions are)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.db.models import F
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from console.alerts import rules
from console.alerts.forms import AlertRuleForm
from console.alerts.models import AlertEvent, AlertRule, AlertState, Channel
from console.http import HtmxHttpRequest, client_address
from console.models import AuditRecord

MANAGE = "console.manage_alerts"
HISTORY = 50
ACTIONS = ("enable", "disable", "delete")


def _shown_destination(rule: AlertRule, manager: bool) -> str:
    """Webhook URLs often carry a secret (Slack's do): only managers see them whole."""
    if manager:
        return rule.destination
    if rule.channel == Channel.EMAIL:
        n = len([a for a in rule.destination.split(",") if a.strip()])
        return f"{n} address{'es' if n != 1 else ''}"
    parts = urlsplit(rule.destination)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def firing() -> list[AlertState]:
    """Firing alerts of enabled rules, longest-firing first (the overview shows them)."""
    return list(
        AlertState.objects.filter(firing=True, rule__enabled=True)
        .select_related("rule")
        .order_by("since")
    )


@require_GET
@login_required
def alert_list(request: HtmxHttpRequest) -> HttpResponse:
    manager = request.user.has_perm(MANAGE)
    found = AlertRule.objects.select_related("state")
    listed = [
        {
            "rule": rule,
            "state": getattr(rule, "state", None),
            "condition": rules.condition(rule),
            "destination": _shown_destination(rule, manager),
        }
        for rule in found
    ]
    return render(
        request,
        "console/alerts.html",
        {
            "rules": listed,
            "history": AlertEvent.objects.all()[:HISTORY],
            "manager": manager,
            "firing_count": sum(1 for r in listed if r["state"] and r["state"].firing),
        },
    )


def _audited(request: HtmxHttpRequest, action: str, about: str, change: Callable[[], str]) -> str:
    """Record the intent, make the change, record how it went (an exception is recorded as
    a failure, then raised)."""
    record = AuditRecord.objects.create(
        actor=request.user.get_username(),
        source="console",
        action=action,
        filter=about,
        client_address=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:1000],
    )
    try:
        outcome = change()
    except Exception as exc:
        AuditRecord.objects.complete(  # type: ignore[attr-defined]
            record.pk, outcome=f"failed: {exc}", ok=False, status_after={}
        )
        raise
    AuditRecord.objects.complete(  # type: ignore[attr-defined]
        record.pk, outcome=outcome, ok=True, status_after={}
    )
    return outcome


def _changes(form: AlertRuleForm) -> str:
    shown = []
    for field in form.changed_data:
        if field == "destination":
            shown.append("destination changed")  # may hold a secret: never in the trail
        else:
            shown.append(f"{field}: {form.initial.get(field)!r} → {form.cleaned_data[field]!r}")
    return "; ".join(shown) or "nothing changed"


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(MANAGE, raise_exception=True)
def alert_edit(request: HtmxHttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=rule_id) if rule_id is not None else None
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        if rule is None:

            def create() -> str:
                made = form.save(commit=False)
                made.created_by = request.user.get_username()
                made.save()
                return f"created rule {made.pk}: {rules.condition(made)}"

            outcome = _audited(request, "alert_rule.create", f"rule {form.instance.name!r}", create)
        else:

            def update() -> str:
                described = _changes(form)
                form.save()
                return described

            outcome = _audited(
                request, "alert_rule.update", f"rule {rule.pk} {rule.name!r}", update
            )
        messages.success(request, f"Alert rule saved: {outcome}")
        return redirect("alert_list")
    return render(request, "console/alert_form.html", {"form": form, "rule": rule})


def _disable(rule: AlertRule) -> str:
    """Disabled rules are not evaluated; one that was firing stops firing without notifying
    (the change is in its history as "disabled")."""
    with transaction.atomic():
        AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
        state = AlertState.objects.filter(rule=rule, firing=True).first()
        if state is not None:
            AlertState.objects.filter(rule=rule, seq=state.seq).update(
                firing=False, seq=F("seq") + 1, since=timezone.now()
            )
            AlertEvent.objects.create(
                rule=rule,
                rule_name=rule.name,
                kind="disabled",
                summary="disabled while firing: no notification",
                notification_id=f"alert-{rule.uid}-{state.seq + 1}-disabled",
                dispatched=True,  # nothing to send
            )
    return f"disabled rule {rule.pk}"


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(MANAGE, raise_exception=True)
def alert_action(request: HtmxHttpRequest, rule_id: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404(f"No action {action!r} on alert rules.")
    rule = get_object_or_404(AlertRule, pk=rule_id)
    if request.method == "GET":
        if action != "delete":  # enable/disable are undone in one click; deleting is not
            return HttpResponseNotAllowed(["POST"])
        return render(request, "console/alert_delete.html", {"rule": rule})
    about = f"rule {rule.pk} {rule.name!r}"

    def change() -> str:
        if action == "delete":
            rule.delete()  # its state goes with it; its history stays, under its name
            return f"deleted ({rules.condition(rule)})"
        if action == "disable":
            return _disable(rule)
        AlertRule.objects.filter(pk=rule.pk).update(enabled=True)
        return f"enabled rule {rule.pk}"

    messages.success(
        request,
        f"Alert rule {rule.name}: {_audited(request, f'alert_rule.{action}', about, change)}",
    )
    return redirect("alert_list")
