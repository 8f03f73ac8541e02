"""Template filters: times in epoch ms and durations (payloads: console.payloads)."""

from __future__ import annotations

import datetime as dt

from django import template

register = template.Library()


@register.filter
def ms_time(ms: int | None) -> dt.datetime | None:
    if ms is None or ms == "":
        return None
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC)


@register.filter
def duration(ms: int | float | None) -> str:
    if ms is None:
        return "—"
    seconds = float(ms) / 1000
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2f} s"


@register.simple_tag
def elapsed(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return "—"
    return duration(int(end) - int(start))
