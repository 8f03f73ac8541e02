"""Starting a bulk action from the console: the audited intent, then the durable bulk workflow
(console/bulk.py) that does the work on a worker and writes the outcome."""

from __future__ import annotations

from console import actions, bulk, sources
from console.models import AuditRecord
from engine import EngineError


def request(
    actor: actions.Actor,
    action: str,
    ids: list[str],
    reason: str,
    query: str = "",
    *,
    version: str | None = None,
    chunk: int = bulk.CHUNK,
) -> AuditRecord:
    """Cancel, resume or fork many workflows, durably: the intent is recorded here, then the
    console's bulk workflow (console/bulk.py) does the work on a worker and writes the
    outcome. Each workflow is acted on only if the action is valid for it; its progress
    page reads how far it got from the database."""
    if action not in bulk.ACTIONS:
        raise ValueError(f"bulk action must be one of {bulk.ACTIONS}, not {action!r}")
    record = actions.intend(actor, f"bulk_{action}", ids, reason, query)
    if sources.current().name:
        # The bulk workflow runs on a Waymark worker, against the engine's own database.
        actions.complete(
            record,
            actions.Outcome(
                False,
                "bulk actions run on Waymark's own database only; "
                "act on this source's workflows one by one",
            ),
        )
        return record
    payload = bulk.spec(action, record.pk, record.status_before, version=version, chunk=chunk)
    try:
        bulk.start(actions.client(), record.pk, payload)
    except (EngineError, ValueError, TypeError) as exc:
        actions.complete(record, actions.Outcome(False, f"the bulk action could not start: {exc}"))
    return record
