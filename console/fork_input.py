"""Forking with an edited input: the original input as JSON to edit, the edit checked and
compared with it (a server-side line diff), and a bounded form of it for the audit trail.

Nothing is written until the edited text parses as JSON and the operator has seen its
difference from the original; the engine checks it once more (``SerializationError``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from console import sources
from console.models import Workflow
from console.payloads import FULL_CHARS, with_heads
from engine import errors, serialization

INPUT_LIMIT = FULL_CHARS  # an input larger than this is not edited in a browser form
AUDIT_CHARS = 2000  # how much of a new input the audit record keeps


@dataclass(frozen=True)
class Original:
    value: Any
    text: str  # pretty JSON, what the textarea starts with
    editable: bool  # False: too large or unreadable; the fork keeps it unchanged
    why_not: str = ""


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def original(workflow_id: str) -> Original:
    """The workflow's input, read with bounded cost (never a multi-megabyte text whole)."""
    if sources.current().is_dbos:
        return Original(None, "", False, "dbos-py's fork takes no new input")
    row = (
        with_heads(Workflow.objects.filter(workflow_uuid=workflow_id), ("inputs",), INPUT_LIMIT)
        .only("workflow_uuid")
        .first()
    )
    if row is None or row.inputs_head is None:  # type: ignore[attr-defined]
        return Original(None, "null", True)
    if (row.inputs_size or 0) > len(row.inputs_head):  # type: ignore[attr-defined]
        return Original(None, "", False, "its input is too large to edit here")
    try:
        value = serialization.decode_inputs(row.inputs_head, "the input")  # type: ignore[attr-defined]
    except errors.SerializationError:
        return Original(None, "", False, "its stored input is not readable JSON")
    return Original(value, pretty(value), True)


def parse(text: str) -> Any:
    """The edited input; ``ValueError`` naming the problem and where it is."""
    if len(text) > INPUT_LIMIT:
        raise ValueError(f"the input is longer than {INPUT_LIMIT:,} characters")
    if "\x00" in text:
        raise ValueError("the input contains a NUL character")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the input is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValueError("the input is nested too deeply") from None


def diff(before: Any, after: Any) -> list[tuple[str, str]]:
    """(kind, line) pairs of a unified diff of the pretty JSON: kind is add, remove, context
    or hunk (a template gives each its class; nothing is styled inline)."""
    lines = difflib.unified_diff(
        pretty(before).splitlines(),
        pretty(after).splitlines(),
        "original input",
        "new input",
        lineterm="",
    )
    kinds = {"+": "add", "-": "remove", "@": "hunk"}
    found = []
    for line in lines:
        if line.startswith(("+++", "---")):
            continue
        found.append((kinds.get(line[:1], "context"), line))
    return found


def changed(before: Original, after: Any) -> bool:
    """Whether the edit changes the input (as JSON: ``true`` is not ``1``, key order aside)."""
    canonical = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)  # noqa: E731
    return before.editable and canonical(before.value) != canonical(after)


def fingerprint(text: str) -> str:
    """Ties a confirmation to the exact text whose difference the operator saw."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def for_audit(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= AUDIT_CHARS else text[: AUDIT_CHARS - 1] + "…"
