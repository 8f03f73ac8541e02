"""The workflow list's filters: parsed from the query string, validated, applied.

Every filter lives in the query string so any view deep-links. A bad value raises
``BadFilterError`` with a reason the 400 page shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.http import QueryDict

from engine.records import Status

PAGE_SIZE = 50
COUNT_CAP = 10_000
WINDOWS = {
    "15m": dt.timedelta(minutes=15),
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
}


class BadFilterError(ValueError):
    """A query parameter the console cannot use; its message says which and why."""


@dataclass(frozen=True)
class WorkflowFilter:
    statuses: tuple[str, ...] = ()
    name: str = ""
    queue: str = ""
    version: str = ""
    executor: str = ""
    id_prefix: str = ""
    parent: str = ""
    since: str = ""  # one of WINDOWS, or ""
    after: dt.datetime | None = None
    before: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return any(
            (
                self.statuses,
                self.name,
                self.queue,
                self.version,
                self.executor,
                self.id_prefix,
                self.parent,
                self.since,
                self.after,
                self.before,
            )
        )

    def query_string(self, **overrides: str) -> str:
        """This filter as a query string (for links: pagination, chips, exports)."""
        pairs: list[tuple[str, str]] = [("status", s) for s in self.statuses]
        for key in ("name", "queue", "version", "executor", "parent", "since"):
            if getattr(self, key):
                pairs.append((key, getattr(self, key)))
        if self.id_prefix:
            pairs.append(("id", self.id_prefix))
        for key in ("after", "before"):
            value = getattr(self, key)
            if value is not None:
                pairs.append((key, value.isoformat()))
        pairs += [(k, v) for k, v in overrides.items() if v]
        return urlencode(pairs)


def _datetime(value: str, param: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadFilterError(
            f"{param}={value!r} is not a date-time; use ISO 8601, e.g. "
            "2026-11-25T14:00 or 2026-11-25T14:00:00+00:00"
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _text(query: QueryDict, param: str, limit: int = 500) -> str:
    value = query.get(param, "").strip()
    if len(value) > limit:
        raise BadFilterError(f"{param} is longer than {limit} characters")
    if "\x00" in value:
        raise BadFilterError(f"{param} contains a NUL character")
    return value


def parse(query: QueryDict) -> WorkflowFilter:
    statuses = tuple(dict.fromkeys(s for s in query.getlist("status") if s))
    for status in statuses:
        if status not in Status.__members__:
            raise BadFilterError(
                f"status={status!r} is not a status; use one of {', '.join(Status.__members__)}"
            )
    since = query.get("since", "")
    if since and since not in WINDOWS:
        raise BadFilterError(f"since={since!r} is not a window; use one of {', '.join(WINDOWS)}")
    after = _datetime(query["after"], "after") if query.get("after") else None
    before = _datetime(query["before"], "before") if query.get("before") else None
    if after and before and after >= before:
        raise BadFilterError("after must be earlier than before")
    return WorkflowFilter(
        statuses=statuses,
        name=_text(query, "name"),
        queue=_text(query, "queue"),
        version=_text(query, "version"),
        executor=_text(query, "executor"),
        id_prefix=_text(query, "id"),
        parent=_text(query, "parent"),
        since=since,
        after=after,
        before=before,
    )


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def apply(qs: QuerySet, f: WorkflowFilter, now: dt.datetime) -> QuerySet:  # type: ignore[type-arg]
    if f.statuses:
        qs = qs.filter(status__in=f.statuses)
    for column, value in (
        ("name", f.name),
        ("queue_name", f.queue),
        ("application_version", f.version),
        ("executor_id", f.executor),
        ("parent_workflow_id", f.parent),
    ):
        if value:
            qs = qs.filter(**{column: value})
    if f.id_prefix:
        qs = qs.filter(workflow_uuid__startswith=f.id_prefix)
    if f.since:
        qs = qs.filter(created_at__gte=_ms(now - WINDOWS[f.since]))
    if f.after:
        qs = qs.filter(created_at__gte=_ms(f.after))
    if f.before:
        qs = qs.filter(created_at__lt=_ms(f.before))
    return qs


def parse_cursor(value: str) -> tuple[int, str] | None:
    """``<created_at ms>~<workflow id>``: the last row of the previous page (keyset)."""
    if not value:
        return None
    created, sep, workflow_id = value.partition("~")
    if not sep or not created.isdigit() or not workflow_id:
        raise BadFilterError(f"cursor={value!r} is not a page cursor; follow the list's Next link")
    return int(created), workflow_id


def page(qs: QuerySet, cursor: tuple[int, str] | None) -> tuple[list, str]:  # type: ignore[type-arg]
    """One page, newest first, by keyset on (created_at, id) — never OFFSET."""
    if cursor is not None:
        created, workflow_id = cursor
        qs = qs.filter(
            Q(created_at__lt=created) | Q(created_at=created, workflow_uuid__lt=workflow_id)
        )
    found = list(qs.order_by("-created_at", "-workflow_uuid")[: PAGE_SIZE + 1])
    rows, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    next_cursor = f"{rows[-1].created_at}~{rows[-1].workflow_uuid}" if more else ""
    return rows, next_cursor


def capped_count(qs: QuerySet) -> tuple[int, bool]:  # type: ignore[type-arg]
    """How many match, counting no further than COUNT_CAP (never an unbounded COUNT(*))."""
    n = qs.order_by()[: COUNT_CAP + 1].count()
    return min(n, COUNT_CAP), n > COUNT_CAP
