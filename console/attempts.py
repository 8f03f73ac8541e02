"""A step's failed attempts as the console shows them: each one's error and traceback
(bounded, escaped by the templates) and the backoff gap before the next attempt."""

from __future__ import annotations

from dataclasses import dataclass

from console.models import Attempt
from console.payloads import FULL_CHARS, Payload, with_heads

SHOWN = 100  # a step page lists this many attempts (a step's max_attempts is rarely more)


@dataclass(frozen=True)
class Row:
    attempt: int
    started_at: int | None
    completed_at: int | None
    error: Payload
    traceback: Payload
    gap_ms: int | None  # from this attempt's failure to the next attempt's start


def rows_of(attempts: list[Attempt]) -> list[Row]:
    """``attempts`` in order, each with the gap before the next failed one (the last one's
    gap is unknown: the attempt after it, if any, succeeded and is the step itself)."""
    found = []
    for i, a in enumerate(attempts):
        after = attempts[i + 1].started_at_epoch_ms if i + 1 < len(attempts) else None
        gap = after - a.completed_at_epoch_ms if after and a.completed_at_epoch_ms else None
        found.append(
            Row(
                attempt=a.attempt,
                started_at=a.started_at_epoch_ms,
                completed_at=a.completed_at_epoch_ms,
                error=Payload.of(a, "error"),
                traceback=Payload.of(a, "traceback"),
                gap_ms=gap,
            )
        )
    return found


def for_step(workflow_id: str, step_id: int) -> tuple[list[Row], int]:
    """The first SHOWN failed attempts of a step, and how many there are."""
    qs = with_heads(
        Attempt.objects.filter(workflow_uuid=workflow_id, function_id=step_id),
        ("error", "traceback"),
        FULL_CHARS,
    ).order_by("attempt")
    shown = list(qs[:SHOWN])
    total = len(shown) if len(shown) < SHOWN else qs.count()
    return rows_of(shown), total


def by_step(workflow_id: str, step_ids: list[int]) -> dict[int, list[tuple[int, int | None]]]:
    """For the timeline: each step's failed attempts as (started, failed) times, in order (no
    payloads read)."""
    if not step_ids:
        return {}
    found: dict[int, list[tuple[int, int | None]]] = {}
    rows = (
        Attempt.objects.filter(workflow_uuid=workflow_id, function_id__in=step_ids)
        .order_by("function_id", "attempt")
        .values_list("function_id", "started_at_epoch_ms", "completed_at_epoch_ms")[:10_000]
    )
    for step_id, started, completed in rows:
        if started is not None:
            found.setdefault(step_id, []).append((started, completed))
    return found
