"""Template filters: times in epoch ms, durations, JSON payload previews (always escaped)."""

from __future__ import annotations

import datetime as dt
import json

from django import template

register = template.Library()

PREVIEW_CHARS = 160


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


def _pretty(text: str | None) -> str:
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text  # corrupt or not JSON: shown as stored (still escaped by the template)


@register.filter
def json_preview(text: str | None) -> str:
    """One line, capped: for tables."""
    if text is None:
        return ""
    try:
        flat = json.dumps(json.loads(text), ensure_ascii=False)
    except (TypeError, ValueError):
        flat = text
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


@register.filter
def json_full(text: str | None) -> str:
    return _pretty(text)


@register.filter
def is_capped(text: str | None) -> bool:
    return text is not None and len(text) > PREVIEW_CHARS


@register.filter
def error_name(text: str | None) -> str:
    try:
        return str(json.loads(text or "{}").get("name", "Error"))
    except (ValueError, AttributeError):
        return "Error"


@register.filter
def error_message(text: str | None) -> str:
    try:
        return str(json.loads(text or "{}").get("message", ""))
    except (ValueError, AttributeError):
        return text or ""
