"""Payloads (inputs, outputs, errors, event values, messages) shown with bounded cost.

A payload can be megabytes of deeply nested JSON. Pages never load one whole: the database
returns its first ``FULL_CHARS`` characters and its length (``substr``/``length``), the page
pretty-prints what fits under that limit and offers the rest as a download.

Each payload is rendered by its row's ``serialization``: ``portable_json`` (Waymark's and
DBOS's portable format) as JSON; DBOS Go's JSON serializer (base64 of JSON text) decoded to its
JSON; dbos-py's ``py_pickle`` is never unpickled: it shows as "pickled Python object (N bytes)",
decoded only with ``WAYMARK_DECODE_PICKLES=1`` and then only through the restricted decoder
(console/pickles.py), which builds plain builtin values and refuses every other class.
"""

from __future__ import annotations

import base64
import binascii
import json
import pprint
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.db.models.functions import Length, Substr

from console import pickles
from engine import serialization

FULL_CHARS = 64 * 1024  # pretty-printed whole below this size
PREVIEW_CHARS = 160  # one line in a table
PRETTY_GROWTH = 4  # indentation may grow a document; past this factor it is shown compact
PICKLE = "py_pickle"  # dbos-py's default serializer: base64 of a pickle
_UNREAD = object()  # a payload that is not JSON in any form the console knows


def _json_of(text: str, fmt: str | None) -> Any:
    """The JSON value of a payload: JSON text, or (DBOS Go) base64 of JSON text; else _UNREAD."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        pass
    if fmt == serialization.FORMAT:
        return _UNREAD
    try:  # DBOS Go's JSON serializer stores base64(json.Marshal(value))
        return json.loads(base64.b64decode(text, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return _UNREAD


def with_heads(qs: QuerySet, fields: tuple[str, ...], chars: int) -> QuerySet:  # type: ignore[type-arg]
    """Defer ``fields`` and annotate ``<field>_head`` (first ``chars``) and ``<field>_size``."""
    annotations = {}
    for name in fields:
        annotations[f"{name}_head"] = Substr(name, 1, chars)
        annotations[f"{name}_size"] = Length(name)
    return qs.defer(*fields).annotate(**annotations)


@dataclass(frozen=True)
class Payload:
    """The start of a stored payload and its full length in characters."""

    head: str | None
    size: int | None
    serialization: str | None = None

    @classmethod
    def of(cls, row: object, name: str) -> Payload:
        return cls(
            getattr(row, f"{name}_head"),
            getattr(row, f"{name}_size"),
            getattr(row, "serialization", None),
        )

    @property
    def pickled(self) -> bool:
        return self.serialization == PICKLE and self.head is not None

    def pickle_summary(self) -> str:
        """What a pickled payload is, and (opt-in, restricted) what it holds."""
        text = self.head or ""
        size = self.size or len(text)
        nbytes = size * 3 // 4 - (
            text.endswith("=") + text.endswith("==") if not self.truncated else 0
        )
        summary = f"pickled Python object ({nbytes:,} bytes)"
        if not getattr(settings, "WAYMARK_DECODE_PICKLES", False):
            return summary + ", not unpickled (WAYMARK_DECODE_PICKLES=1 decodes builtin values)"
        if self.truncated:
            return summary + ", too large to decode here"
        try:
            value = pickles.decode(text)
        except pickles.PickleRefusedError as exc:
            return f"{summary}, not decoded: {exc}"
        return f"{summary}, decoded (builtin values only):\n{pprint.pformat(value, width=100)}"

    @property
    def present(self) -> bool:
        return self.head is not None

    @property
    def truncated(self) -> bool:
        return self.head is not None and (self.size or 0) > len(self.head)

    def pretty(self) -> str:
        """Indented JSON when the whole payload is here and stays reasonably small."""
        if self.head is None:
            return ""
        if self.pickled:
            return self.pickle_summary()
        if self.truncated:
            return self.head + "…"
        value = _json_of(self.head, self.serialization)
        if value is _UNREAD:
            return self.head  # corrupt or not JSON: shown as stored (escaped by the template)
        text = json.dumps(value, indent=2, ensure_ascii=False)
        if len(text) > PRETTY_GROWTH * FULL_CHARS:
            return json.dumps(value, ensure_ascii=False)
        return text

    def preview(self) -> str:
        """One line, at most PREVIEW_CHARS, for tables."""
        if self.head is None:
            return ""
        if self.pickled:
            flat = self.pickle_summary()
            return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
        flat = self.head
        if not self.truncated and len(flat) <= 4 * PREVIEW_CHARS:
            value = _json_of(flat, self.serialization)
            if value is not _UNREAD:
                flat = json.dumps(value, ensure_ascii=False)
        flat = " ".join(flat.split())
        if len(flat) <= PREVIEW_CHARS and not self.truncated:
            return flat
        return flat[: PREVIEW_CHARS - 1] + "…"

    @property
    def capped(self) -> bool:
        """Whether the preview leaves something out (the table then links to the full view)."""
        return self.head is not None and (self.size or 0) > PREVIEW_CHARS

    def error(self) -> tuple[str, str]:
        """(exception name, message) of a recorded error; the raw text when it is not JSON."""
        if self.head is None:
            return "", ""
        if self.pickled:  # a pickled exception: its class is never loaded
            return "pickled Python exception", self.pickle_summary()
        try:
            data = _json_of(self.head, self.serialization)
            return str(data.get("name", "Error")), str(data.get("message", ""))
        except (TypeError, ValueError, AttributeError, RecursionError):
            return "Error", self.head + ("…" if self.truncated else "")
