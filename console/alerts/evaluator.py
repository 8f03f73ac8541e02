"""One evaluation pass, run every few seconds by every worker and done by the lease holder:
read each enabled rule, record state changes and reminders, start their notifications.

A state change is recorded with a compare-and-set on the rule's state (``seq`` must still be
the one read) together with its event, in one transaction; the event is also the outbox: its
notification workflow is started after the commit, under the event's ``notification_id``, and
the event marked dispatched. A crash between the two leaves it undispatched, and the next pass
(here or on another worker) starts it again under the same ID, which starts nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from console.alerts import lease, notify, rules
from console.alerts.models import AlertEvent, AlertRule, AlertState
from engine import Client

log = logging.getLogger("console.alerts")
LEASE = "alerts.evaluator"
DISPATCH_BATCH = 100


class Evaluator:
    def __init__(
        self,
        holder: str,
        client: Client,
        *,
        interval: float | None = None,
        application_version: str | None = None,
        now: Callable[[], dt.datetime] = timezone.now,
    ) -> None:
        """``application_version``: the version whose workers run the notifications (those
        built by console/worker.py, which registers the workflow). None lets any worker take
        them, and a worker of another application, without the workflow, would fail them."""
        self.holder = holder
        self.client = client
        self.application_version = application_version
        self.interval = interval if interval is not None else settings.WAYMARK_ALERT_INTERVAL
        # Three missed renewals before another worker takes over a silent holder.
        self.lease_seconds = max(3 * self.interval, 5.0)
        self._now = now
        self._last_error = ""

    def run_once(self) -> bool:
        """One pass; True when this evaluator held the lease and evaluated."""
        if not lease.acquire(LEASE, self.holder, self.lease_seconds):
            return False
        context = rules.Context()
        for rule in AlertRule.objects.filter(enabled=True):
            try:
                reading = rules.evaluate(rule, context)
            except DatabaseError:
                raise  # the database, not the rule: the whole pass is retried next time
            except Exception as exc:  # one broken rule must not silence the others
                reading = rules.Reading(0.0, False, f"could not be evaluated: {exc}")
                log.exception(
                    "alert rule %s could not be evaluated",
                    rule.name,
                    extra={"action": "alerts.rule_failed", "rule": rule.name},
                )
            self.record(rule, reading)
        self.dispatch()
        return True

    def record(self, rule: AlertRule, reading: rules.Reading) -> AlertEvent | None:
        """Apply one reading to the rule's state; the event it caused, if any."""
        state, _ = AlertState.objects.get_or_create(rule=rule)
        now = self._now()
        seen = AlertState.objects.filter(rule=rule, seq=state.seq)
        figures = {"value": reading.value, "summary": reading.summary, "evaluated_at": now}
        if reading.firing != state.firing:
            kind, seq = ("firing" if reading.firing else "resolved"), state.seq + 1
            with transaction.atomic():
                changed = seen.update(
                    firing=reading.firing,
                    seq=F("seq") + 1,
                    since=now,
                    reminders=0,
                    reminded_at=now,
                    **figures,
                )
                return self._event(rule, kind, seq, reading) if changed else None
        due = state.reminded_at is not None and now - state.reminded_at >= dt.timedelta(
            minutes=rule.reminder_minutes
        )
        if state.firing and rule.reminder_minutes and due:
            n = state.reminders + 1
            with transaction.atomic():
                changed = seen.filter(reminders=state.reminders).update(
                    reminders=n, reminded_at=now, **figures
                )
                if changed:
                    return self._event(rule, "reminder", state.seq, reading, f"reminder-{n}")
                return None
        seen.update(**figures)
        return None

    def _event(
        self, rule: AlertRule, kind: str, seq: int, reading: rules.Reading, suffix: str = ""
    ) -> AlertEvent:
        log.warning(
            "alert %s %s: %s",
            rule.name,
            kind,
            reading.summary,
            extra={"action": f"alerts.{kind}", "rule": rule.name, "value": reading.value},
        )
        # Deterministic per (rule, state change): the rule's uid survives renames, and a rule
        # deleted and made again gets a new one.
        notification_id = f"alert-{rule.uid}-{seq}-{suffix or kind}"
        return AlertEvent.objects.create(
            rule=rule,
            rule_name=rule.name,
            kind=kind,
            value=reading.value,
            summary=reading.summary,
            notification_id=notification_id,
        )

    def dispatch(self) -> int:
        """Start the notification workflow of every undispatched event, oldest first."""
        pending = AlertEvent.objects.filter(dispatched=False).order_by("pk")[:DISPATCH_BATCH]
        started = 0
        for event in pending:
            self.client.start_workflow(
                notify.WORKFLOW,
                {"event": event.pk, "rule": event.rule_name, "kind": event.kind},
                workflow_id=event.notification_id,
                application_version=self.application_version,
            )
            AlertEvent.objects.filter(pk=event.pk).update(dispatched=True)
            started += 1
        return started

    def run_forever(self, stop: threading.Event) -> None:
        """The loop runworker runs in a thread: a pass every ``interval`` until ``stop``."""
        try:
            while not stop.wait(self.interval):
                self._pass_logged()
        finally:
            try:
                lease.release(LEASE, self.holder)
            except DatabaseError:
                pass  # it expires by itself
            close_old_connections()

    def _pass_logged(self) -> None:
        try:
            self.run_once()
            self._last_error = ""
        except Exception as exc:
            # Logged once per distinct error, not every few seconds (a console database that
            # was never migrated would otherwise fill the log).
            if str(exc) != self._last_error:
                self._last_error = str(exc)
                log.exception("alert evaluation failed: %s", exc, extra={"action": "alerts.failed"})
        finally:
            close_old_connections()
