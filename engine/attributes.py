"""Workflow attributes: searchable business keys (``{"customer": "42"}``) on a workflow.

Keys are non-empty strings, values JSON scalars (str, int, float, bool), so each pair can be
indexed for equality on both databases (workflow_attributes on SQLite, a GIN index on the
JSONB column on Postgres). Checked before anything is written: a bad mapping raises naming the
key, the value and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

MAX_KEY = 200
MAX_VALUE = 1000
_FIX = "attributes map string keys to str, int, float or bool values"


def check(attributes: object, what: str = "attributes") -> dict[str, str | int | float | bool]:
    if not isinstance(attributes, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(attributes).__name__}; {_FIX}")
    checked: dict[str, str | int | float | bool] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY or "\x00" in key:
            raise TypeError(
                f"{what}: key {key!r} is not a non-empty string of at most {MAX_KEY} "
                f"characters; {_FIX}"
            )
        if not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"{what}: value {value!r} of key {key!r} is a {type(value).__name__}, not a "
                f"JSON scalar; {_FIX} (store structured data in the workflow's input or events)"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what}: value {value!r} of key {key!r} is not a finite number")
        if isinstance(value, str) and (len(value) > MAX_VALUE or "\x00" in value):
            raise ValueError(
                f"{what}: value of key {key!r} is longer than {MAX_VALUE} characters or "
                "contains a NUL character"
            )
        checked[key] = value
    return checked


def encode(attributes: Mapping[str, Any] | None, what: str = "attributes") -> str | None:
    """The stored JSON object (None when there are none)."""
    if attributes is None:
        return None
    checked = check(attributes, what)
    return json.dumps(checked, separators=(",", ":"), sort_keys=True) if checked else None


def decode(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored attributes as a dict (a reader that decoded the JSON already passes a dict)."""
    if isinstance(text, Mapping):
        return dict(text)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
