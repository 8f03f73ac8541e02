"""The audit trail as pages and CSV show it: bounded summaries, safe spreadsheet cells.

An audit record of a bulk action can name 10,000 workflows; it is permanent, so every page
that shows it must cost the same whatever its size. A row carries a few IDs and the status
transitions counted (``PENDING → CANCELLED x 9,998``), never the whole maps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from console import bulk
from console.models import AuditRecord, BulkJob

SHOWN_IDS = 5
SHOWN_TRANSITIONS = 3
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Transition:
    before: str
    after: str
    count: int


@dataclass(frozen=True)
class AuditRow:
    record: AuditRecord
    ids: list[str]
    more_ids: int
    transitions: list[Transition]
    more_transitions: int
    # A bulk action still running (or cut short before its outcome): {"done", "total"}.
    progress: dict[str, Any] | None


def transitions(before: dict[str, str], after: dict[str, str]) -> list[Transition]:
    counted = Counter((status, after.get(i, "?")) for i, status in before.items())
    return [Transition(b, a, n) for (b, a), n in counted.most_common()]


def rows(records: Iterable[AuditRecord]) -> list[AuditRow]:
    found = list(records)
    unfinished = [r for r in found if r.completed_at is None and r.action.startswith("bulk_")]
    # Bulk actions run as workflows (console/bulk.py); records from before that, as BulkJobs.
    jobs: dict[int, dict[str, Any]] = {
        j.audit_id: {"done": j.done, "total": j.total}
        for j in BulkJob.objects.filter(audit_id__in=[r.pk for r in unfinished])
    }
    for r in unfinished:
        running = bulk.progress(r.pk)
        if running is not None:
            jobs[r.pk] = {"done": running["done"], "total": len(r.workflow_ids)}
    result = []
    for record in found:
        moves = transitions(record.status_before, record.status_after)
        result.append(
            AuditRow(
                record=record,
                ids=record.workflow_ids[:SHOWN_IDS],
                more_ids=max(0, len(record.workflow_ids) - SHOWN_IDS),
                transitions=moves[:SHOWN_TRANSITIONS],
                more_transitions=max(0, len(moves) - SHOWN_TRANSITIONS),
                progress=jobs.get(record.pk),
            )
        )
    return result


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: formula-like text gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
