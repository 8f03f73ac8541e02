"""Cancel, resume and fork on a DBOS source, by DBOS's own rules (console/sql/dbos_actions.sql).

A DBOS application's database is never migrated and never written by the engine's Client: these
few parameterized statements, each action in one transaction, are the only writes the console
makes there. Callers audit them like any other action (console/actions.py).
"""

from __future__ import annotations

import re
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections, transaction

from console.sources import Source

SQL = Path(__file__).resolve().parent / "sql"
ACTIONS = ("cancel", "resume", "fork")  # everything else is read-only on a DBOS source
NO_NEW_INPUT = (
    "a fork on a DBOS source keeps the original input (dbos-py's fork_workflow takes no new "
    "one); fork without editing the input"
)
# After the new status row: what a fork copies of the original, in dbos-py's order.
FORK_COPIES = (
    "fork_input",
    "fork_mark",
    "fork_steps",
    "fork_events_history",
    "fork_events",
    "fork_streams",
)


@cache
def queries() -> dict[str, str]:
    """The named statements of dbos_actions.sql and dbos_reads.sql (``-- name --`` headers)."""
    found: dict[str, str] = {}
    text = (SQL / "dbos_actions.sql").read_text() + "\n" + (SQL / "dbos_reads.sql").read_text()
    for name, body in re.findall(r"^-- (\w+) --\n(.*?)(?=^-- \w+ --\n|\Z)", text, re.S | re.M):
        lines = [line for line in body.splitlines() if not line.startswith("--")]
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


def not_offered(action: str) -> str:
    return (
        f"{action} is not offered on a DBOS source: the console acts there only by DBOS's own "
        f"protocol ({', '.join(ACTIONS)}); use the DBOS application or its CLI"
    )


def _run(source: Source, name: str, params: dict[str, object]) -> int:
    connection = connections[source.alias]
    prefix = "main." if connection.vendor == "sqlite" else f'"{source.schema}".'
    with connection.cursor() as cur:
        cur.execute(queries()[name].replace("{dbos}", prefix), params)
        return int(cur.rowcount)


def read(source: Source, name: str, params: dict[str, object] | None = None) -> list[Any]:
    """Rows of a named read; [] when the table is missing (an older DBOS schema)."""
    connection = connections[source.alias]
    prefix = "main." if connection.vendor == "sqlite" else f'"{source.schema}".'
    try:
        with transaction.atomic(using=source.alias), connection.cursor() as cur:
            cur.execute(queries()[name].replace("{dbos}", prefix), params or {})
            return list(cur.fetchall())
    except DatabaseError:
        return []


def _descendants_cancelled(source: Source, root: str, now: int) -> int:
    """dbos-py's ``cancel_children``: down ``parent_workflow_id`` level by level, each child
    cancelled by the same statement (a finished one is left as it is); how many were."""
    connection = connections[source.alias]
    prefix = "main." if connection.vendor == "sqlite" else f'"{source.schema}".'
    seen, frontier, cancelled = {root}, [root], 0
    while frontier:
        level: list[str] = []
        for parent in frontier:
            with connection.cursor() as cur:
                cur.execute(queries()["children"].replace("{dbos}", prefix), {"id": parent})
                level += [child for (child,) in cur.fetchall() if child not in seen]
            seen.update(level)
        for child in level:
            cancelled += _run(source, "cancel", {"id": child, "now": now})
        frontier = level
    return cancelled


def act(
    source: Source,
    action: str,
    workflow_id: str,
    step: int | None = None,
    version: str | None = None,
    new_workflow_id: str | None = None,
    cancel_children: bool = False,
) -> tuple[bool, str, str | None]:
    """(ok, message, new workflow ID) of one action on a DBOS source."""
    now = int(time.time() * 1000)
    base = {"id": workflow_id, "now": now}
    try:
        with transaction.atomic(using=source.alias):
            if action in ("cancel", "resume"):
                if not _run(source, action, base):
                    return False, f"{workflow_id!r} is finished or gone: nothing to {action}", None
                if action == "resume":
                    return True, "resumed", None
                if not cancel_children:
                    return True, "cancelled", None
                count = _descendants_cancelled(source, workflow_id, now)
                return True, f"cancelled, with {count} unfinished descendant(s)", None
            if action == "fork":
                new = new_workflow_id or str(uuid.uuid4())
                params = {**base, "new": new, "step": step or 1, "version": version or None}
                if not _run(source, "fork_status", params):
                    return False, f"no workflow with ID {workflow_id!r}", None
                # dbos-py's fork_workflow, statement for statement (dbos/_sys_db.py).
                for name in FORK_COPIES:
                    _run(source, name, params)
                return True, f"forked into {new}", new
    except DatabaseError as exc:
        return False, f"the DBOS database refused the {action}: {exc}".strip(), None
    return False, f"unknown action {action!r}", None
