"""Payloads (inputs, outputs, errors, event values, messages) shown with bounded cost.

A payload can be megabytes of deeply nested JSON. Pages never load one whole: the database
returns its first ``FULL_CHARS`` characters and its length (``substr``/``length``), the page
pretty-prints what fits under that limit and offers the rest as a download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db.models import QuerySet
from django.db.models.functions import Length, Substr

FULL_CHARS = 64 * 1024  # pretty-printed whole below this size
PREVIEW_CHARS = 160  # one line in a table
PRETTY_GROWTH = 4  # indentation may grow a document; past this factor it is shown compact


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

    @classmethod
    def of(cls, row: object, name: str) -> Payload:
        return cls(getattr(row, f"{name}_head"), getattr(row, f"{name}_size"))

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
        if self.truncated:
            return self.head + "…"
        try:
            value = json.loads(self.head)
        except (TypeError, ValueError, RecursionError):
            return self.head  # corrupt or not JSON: shown as stored (escaped by the template)
        text = json.dumps(value, indent=2, ensure_ascii=False)
        if len(text) > PRETTY_GROWTH * FULL_CHARS:
            return json.dumps(value, ensure_ascii=False)
        return text

    def preview(self) -> str:
        """One line, at most PREVIEW_CHARS, for tables."""
        if self.head is None:
            return ""
        flat = self.head
        if not self.truncated and len(flat) <= 4 * PREVIEW_CHARS:
            try:
                flat = json.dumps(json.loads(flat), ensure_ascii=False)
            except (TypeError, ValueError, RecursionError):
                pass
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
        try:
            data = json.loads(self.head)
            return str(data.get("name", "Error")), str(data.get("message", ""))
        except (TypeError, ValueError, AttributeError, RecursionError):
            return "Error", self.head + ("…" if self.truncated else "")
