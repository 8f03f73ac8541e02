"""Exactly one alert evaluator, however many workers run: a lease row in the console database.

Every worker tries, every pass, one conditional UPDATE: take the lease if I hold it already or
it has expired. The database serializes the UPDATEs on the row (Postgres re-checks the WHERE
against the row a concurrent winner just wrote; SQLite runs one writer at a time), so at most
one holder is ever named, and a holder that stops renewing (killed, hung) loses the lease when
it expires and the next worker takes it.

Why the console's database and not the engine's: the rules, their state and the history the
evaluator writes live there, so the lease guarding them sits beside them; and the console never
writes the engine's tables (DESIGN.md), which would need an engine migration besides. Expiry is
on the database's clock (``Now()``), never a worker's: a worker whose clock runs ahead cannot
think a live holder's lease has expired (the same reasoning as the engine's heartbeats).

A holder paused past its expiry may still be mid-pass when another takes over; that costs no
duplicate notification, because every state change is a compare-and-set on the rule's state
(console/alerts/evaluator.py), and a notification's workflow ID is derived from the change.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import DateTimeField, ExpressionWrapper, Q, Value
from django.db.models.functions import Now

from console.alerts.models import Lease

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _in(seconds: float) -> ExpressionWrapper:
    """``now() + seconds`` on the database's clock."""
    return ExpressionWrapper(
        Now() + Value(dt.timedelta(seconds=seconds)), output_field=DateTimeField()
    )


def acquire(name: str, holder: str, seconds: float, *, using: str = "default") -> bool:
    """Take or renew the lease ``name`` for ``seconds``; True when ``holder`` has it now."""
    leases = Lease.objects.using(using)
    # Make sure the row exists (expired), so that taking it is always the same UPDATE; two
    # workers creating it at once is resolved by the primary key (get_or_create re-reads).
    leases.get_or_create(name=name, defaults={"holder": "", "expires_at": _EPOCH})
    taken = (
        leases.filter(name=name)
        .filter(Q(holder=holder) | Q(expires_at__lt=Now()))
        .update(holder=holder, expires_at=_in(seconds))
    )
    return taken == 1


def release(name: str, holder: str, *, using: str = "default") -> None:
    """Give the lease up at once (a worker stopping), so another need not wait for expiry."""
    Lease.objects.using(using).filter(name=name, holder=holder).update(expires_at=_EPOCH)


def holder(name: str, *, using: str = "default") -> str | None:
    """Who holds the lease now (None: nobody, or it expired)."""
    found = (
        Lease.objects.using(using)
        .filter(name=name, expires_at__gte=Now())
        .values_list("holder", flat=True)
        .first()
    )
    return found or None
