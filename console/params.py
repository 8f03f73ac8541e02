"""Query and form parameters, validated: bounded text, digits that are ``[0-9]``, no NUL.

Every parameter a view reads goes through here or through ``filters``, so no input reaches
the database in a form it rejects (a NUL is a DataError on Postgres; a 20-digit number
overflows its integer columns): a bad value is a 400 page naming the parameter and the fix.
"""

from __future__ import annotations

import re

from django.http import QueryDict

from console.converters import MAX_STEP

TEXT_LIMIT = 500
DIGITS = re.compile(r"[0-9]{1,10}")


class BadParameterError(ValueError):
    """A parameter the console cannot use; its message says which and why."""


def clean(value: str, param: str, limit: int = TEXT_LIMIT) -> str:
    if len(value) > limit:
        raise BadParameterError(f"{param} is longer than {limit} characters")
    if "\x00" in value:
        raise BadParameterError(f"{param} contains a NUL character")
    return value


def text(query: QueryDict, param: str, limit: int = TEXT_LIMIT) -> str:
    return clean(query.get(param, "").strip(), param, limit)


def number(
    query: QueryDict, param: str, *, default: int, minimum: int = 1, maximum: int = MAX_STEP
) -> int:
    raw = query.get(param, "").strip()
    if not raw:
        return default
    if not DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise BadParameterError(f"{param}={raw[:40]!r} is not a number from {minimum} to {maximum}")
    return int(raw)


def flag(query: QueryDict, param: str, *, default: bool) -> bool:
    """A checkbox sent after a hidden ``0`` of the same name: the last value wins ("1" when
    ticked); ``default`` when the form did not send it at all."""
    values = query.getlist(param)
    if not values:
        return default
    if any(value not in ("0", "1") for value in values):
        raise BadParameterError(f"{param} must be 0 or 1, got {values[-1][:40]!r}")
    return values[-1] == "1"
