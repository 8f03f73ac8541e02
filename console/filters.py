"""The workflow list's filters: parsed from the query string, validated, applied.

Every filter lives in the query string so any view deep-links. A bad value raises
``BadFilterError`` with a reason the 400 page shows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db import connections
from django.db.models import Q, QuerySet
from django.http import QueryDict

from console import params
from console.bulk import WORKFLOW as CONSOLE_WORKFLOW
from engine import attributes as engine_attributes
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


# Dates a filter accepts: any later or earlier overflows epoch milliseconds somewhere.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
CURSOR = re.compile(r"([0-9]{1,15})~(.+)", re.DOTALL)
ID_LIMIT = 10_000  # characters of a workflow ID the console accepts in a parameter


class BadFilterError(params.BadParameterError):
    """A filter the console cannot use; its message says which and why."""


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
    internal: bool = False  # also the console's own workflows (bulk actions)
    # ?attr.customer=42: workflows whose attribute "customer" is "42" (or the number 42)
    attributes: tuple[tuple[str, str], ...] = ()

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
                self.internal,
                self.attributes,
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
        if self.internal:
            pairs.append(("internal", "1"))
        pairs += [(ATTR_PREFIX + key, value) for key, value in self.attributes]
        pairs += [(k, v) for k, v in overrides.items() if v]
        return urlencode(pairs)


def _datetime(value: str, param: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(params.clean(value, param, 64))
        if not parsed.tzinfo:
            parsed = parsed.replace(tzinfo=dt.UTC)
        in_range = EARLIEST <= parsed <= LATEST  # comparing aware times converts; may overflow
    except (ValueError, OverflowError):
        raise BadFilterError(
            f"{param}={value[:64]!r} is not a date-time; use ISO 8601, e.g. "
            "2026-11-25T14:00 or 2026-11-25T14:00:00+00:00"
        )
    if not in_range:
        raise BadFilterError(f"{param} must be between 1970 and 9999")
    return parsed


def _text(query: QueryDict, param: str, limit: int = params.TEXT_LIMIT) -> str:
    try:
        return params.text(query, param, limit)
    except params.BadParameterError as exc:
        raise BadFilterError(str(exc))


def parse(query: QueryDict) -> WorkflowFilter:
    statuses = tuple(dict.fromkeys(s for s in query.getlist("status") if s))
    for status in statuses:
        if status not in Status.__members__:
            raise BadFilterError(
                f"status={status[:40]!r} is not a status; use one of "
                f"{', '.join(Status.__members__)}"
            )
    since = query.get("since", "")
    if since and since not in WINDOWS:
        raise BadFilterError(
            f"since={since[:40]!r} is not a window; use one of {', '.join(WINDOWS)}"
        )
    after = _datetime(query["after"], "after") if query.get("after") else None
    before = _datetime(query["before"], "before") if query.get("before") else None
    if after and before and after >= before:
        raise BadFilterError("after must be earlier than before")
    internal = query.get("internal", "")
    if internal not in ("", "1"):
        raise BadFilterError(f"internal={internal[:40]!r} must be 1 or absent")
    return WorkflowFilter(
        attributes=_attributes(query),
        statuses=statuses,
        name=_text(query, "name"),
        queue=_text(query, "queue"),
        version=_text(query, "version"),
        executor=_text(query, "executor"),
        id_prefix=_text(query, "id", ID_LIMIT),
        parent=_text(query, "parent", ID_LIMIT),
        since=since,
        after=after,
        before=before,
        internal=internal == "1",
    )


ATTR_PREFIX = "attr."
MAX_ATTRIBUTE_FILTERS = 10


def _attributes(query: QueryDict) -> tuple[tuple[str, str], ...]:
    """``attr.<key>=<value>`` parameters: keys as the engine accepts them, one value each."""
    found: dict[str, str] = {}
    for param in query:
        if not param.startswith(ATTR_PREFIX):
            continue
        key = param.removeprefix(ATTR_PREFIX)
        values = query.getlist(param)
        if len(values) != 1:
            raise BadFilterError(f"{param[:60]!r} is given {len(values)} times; give it once")
        try:
            value = params.clean(values[0], param[:60], engine_attributes.MAX_VALUE)
        except params.BadParameterError as exc:
            raise BadFilterError(str(exc)) from None
        try:
            engine_attributes.check({key: value})
        except (TypeError, ValueError) as exc:
            raise BadFilterError(
                f"{param[:60]!r} is not an attribute filter ({exc}); use attr.<key>=<value>, "
                "e.g. attr.customer=42"
            ) from None
        found[key] = value
    if len(found) > MAX_ATTRIBUTE_FILTERS:
        raise BadFilterError(f"at most {MAX_ATTRIBUTE_FILTERS} attr.<key> filters at once")
    return tuple(sorted(found.items()))


def _typed(value: str) -> list[object]:
    """What ``?attr.k=<value>`` matches: the string, and the number or boolean it spells."""
    matches: list[object] = [value]
    try:
        parsed = json.loads(value)
    except ValueError:
        return matches
    if isinstance(parsed, bool | int | float) and parsed not in matches:
        matches.append(parsed)
    return matches


def _attribute_match(qs: QuerySet, key: str, value: str) -> QuerySet:  # type: ignore[type-arg]
    """One attribute pair, through the engine's index: JSONB containment (GIN) on Postgres,
    workflow_attributes on SQLite (engine migration 0007)."""
    candidates = _typed(value)
    if connections[qs.db].vendor == "postgresql":
        where = " OR ".join(["attributes @> %s::jsonb"] * len(candidates))
        values = [json.dumps({key: c}) for c in candidates]
        return qs.extra(where=[f"({where})"], params=values)
    marks = ", ".join(["%s"] * len(candidates))
    where = (
        "workflow_uuid IN (SELECT workflow_uuid FROM workflow_attributes "
        f"WHERE key = %s AND value IN ({marks}))"
    )
    values = [key, *(json.dumps(c, ensure_ascii=False) for c in candidates)]
    return qs.extra(where=[where], params=values)


def prefix_range(column: str, prefix: str) -> dict[str, str]:
    """Filters matching ``column`` values that start with ``prefix``, as a range the column's
    index serves (``LIKE 'p%'`` cannot use it under Postgres's non-"C" collations, C.UTF-8
    included) plus the prefix test itself. The range [p, p with its last character bumped)
    holds every string starting with p in code-point order (SQLite's, "C" and C.UTF-8)."""
    upper = prefix[:-1] + chr(min(ord(prefix[-1]) + 1, 0x10FFFF))
    return {f"{column}__gte": prefix, f"{column}__lt": upper, f"{column}__startswith": prefix}


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def apply(qs: QuerySet, f: WorkflowFilter, now: dt.datetime) -> QuerySet:  # type: ignore[type-arg]
    if f.statuses:
        qs = qs.filter(status__in=f.statuses)
    if f.name:  # a prefix: "shop." finds shop.checkout and shop.refund
        qs = qs.filter(**prefix_range("name", f.name))
    if not f.internal:  # the console's own bulk actions are not user workflows
        qs = qs.exclude(name=CONSOLE_WORKFLOW)
    for column, value in (
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
    for key, value in f.attributes:
        qs = _attribute_match(qs, key, value)
    return qs


def parse_cursor(value: str, param: str = "cursor") -> tuple[int, str] | None:
    """``<created_at ms>~<workflow id>``: the last row of the previous page (``cursor``) or
    the first row of the next one (``back``), for keyset pagination."""
    if not value:
        return None
    match = CURSOR.fullmatch(value)
    if not match or len(value) > ID_LIMIT + 16 or "\x00" in value:
        raise BadFilterError(
            f"{param}={value[:40]!r} is not a page cursor; follow the list's page links"
        )
    return int(match[1]), match[2]


@dataclass(frozen=True)
class Page:
    rows: list  # type: ignore[type-arg]
    next_cursor: str  # "" on the last page
    prev_cursor: str  # "" on the first page


def _key(row: object) -> str:
    return f"{row.created_at}~{row.workflow_uuid}"  # type: ignore[attr-defined]


def page(
    qs: QuerySet,  # type: ignore[type-arg]
    cursor: tuple[int, str] | None,
    back: tuple[int, str] | None = None,
) -> Page:
    """One page, newest first, by keyset on (created_at, id) — never OFFSET.

    ``cursor``: the rows after (older than) that key; ``back``: the page before that key,
    read newer-first from the key upwards (the same index, scanned the other way).
    """
    if back is not None:
        created, workflow_id = back
        newer = qs.filter(
            Q(created_at__gt=created) | Q(created_at=created, workflow_uuid__gt=workflow_id)
        )
        found = list(newer.order_by("created_at", "workflow_uuid")[: PAGE_SIZE + 1])
        if len(found) <= PAGE_SIZE:  # back at the start: the first page, full
            return page(qs, None)
        rows = found[:PAGE_SIZE][::-1]
        return Page(rows, _key(rows[-1]), _key(rows[0]))
    if cursor is not None:
        created, workflow_id = cursor
        qs = qs.filter(
            Q(created_at__lt=created) | Q(created_at=created, workflow_uuid__lt=workflow_id)
        )
    found = list(qs.order_by("-created_at", "-workflow_uuid")[: PAGE_SIZE + 1])
    rows, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    return Page(
        rows,
        _key(rows[-1]) if more else "",
        _key(rows[0]) if cursor is not None and rows else "",
    )


def capped_count(qs: QuerySet) -> tuple[int, bool]:  # type: ignore[type-arg]
    """How many match, counting no further than COUNT_CAP (never an unbounded COUNT(*))."""
    n = qs.order_by()[: COUNT_CAP + 1].count()
    return min(n, COUNT_CAP), n > COUNT_CAP
