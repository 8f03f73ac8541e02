"""The step timeline, laid out on the server: one row per step, bars positioned in percent.

A sleep is drawn to its recorded wake-up time (ahead of now while it sleeps), labelled with
it. Long idle stretches (inside a durable sleep or a wait, or between steps) are compressed into
labelled breaks so the work around them stays readable; a break is only ever placed where no
working step runs. The deadline and "now" are vertical lines. Every position is a percent of
the track, which the page's marks overlay shares exactly.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from console.models import Step, Workflow
from engine import operations as names

BREAK_WIDTH = 4.0  # percent of the width a compressed gap takes
MIN_BREAK_MS = 60_000  # gaps shorter than this are never compressed
BREAK_SHARE = 0.2  # ...nor those shorter than this share of the whole span
NAME_CHARS = 40

# Steps that wait rather than work: their bars are hatched, and their inside is idle time
# the scale may compress (a one-hour sleep must not squeeze the work around it to nothing).
WAITS = names.WAITS
MARKERS = names.MARKERS


@dataclass
class AttemptMark:
    """A failed attempt inside a step's bar, and the backoff wait after it."""

    left: float
    width: float
    gap_left: float | None
    gap_width: float | None
    title: str


@dataclass
class Bar:
    step_id: int
    name: str
    short_name: str
    kind: str  # compute | sleep | wait | message | event | timer | child
    outcome: str  # ok | error | running
    left: float
    width: float
    tick: float | None  # a sleep's wake-up time
    wake_label: str  # "wakes 15:03:02 UTC", beside the tick
    wake_side: str  # left | right of the tick, whichever has room
    child_workflow_id: str | None
    title: str
    attempts: list[AttemptMark] = field(default_factory=list)


@dataclass
class Break:
    left: float
    width: float
    label: str  # "58.0 min idle, 14:03:05 → 15:01:05 UTC"


@dataclass
class Timeline:
    bars: list[Bar]
    breaks: list[Break]
    deadline: float | None
    now: float | None  # where "now" is, while the workflow is unfinished
    start_ms: int
    end_ms: int


def _kind(step: Step) -> str:
    if step.function_name == names.SLEEP:
        return "sleep"
    if step.function_name in WAITS:
        return "wait"
    if step.function_name in MARKERS:
        return MARKERS[step.function_name]
    if step.child_workflow_id:
        return "child"
    return "compute"


def _wake(step: Step) -> int | None:
    try:
        return int(json.loads(step.output_head)) if step.output_head else None
    except (ValueError, TypeError):
        return None


def _span(step: Step, kind: str, now: int) -> tuple[int, int]:
    """A step's bar: a sleep is drawn to its recorded wake-up time, even one still ahead."""
    start = step.started_at_epoch_ms or step.completed_at_epoch_ms or now
    end = step.completed_at_epoch_ms or now
    wake = _wake(step) if kind == "sleep" else None
    if wake is not None:
        end = max(end, wake)
    return start, max(end, start)


def _busy(kind: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    """What the scale must keep readable: a working step whole, a wait only its two ends."""
    start, end = span
    if kind in ("sleep", "wait"):
        return [(start, start), (end, end)]
    return [span]


def _human(ms: int) -> str:
    seconds = ms / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S")


class _Scale:
    """Maps epoch ms to percent of the track, with long idle gaps squeezed into fixed-width
    breaks."""

    def __init__(self, start: int, end: int, spans: list[tuple[int, int]]) -> None:
        total = max(end - start, 1)
        threshold = max(MIN_BREAK_MS, BREAK_SHARE * total)
        covered: list[list[int]] = []
        for s, e in sorted(spans):
            if covered and s <= covered[-1][1]:
                covered[-1][1] = max(covered[-1][1], e)
            else:
                covered.append([s, e])
        gaps, cursor = [], start
        for s, e in covered:
            if s - cursor > threshold:
                gaps.append((cursor, s))
            cursor = max(cursor, e)
        if end - cursor > threshold:
            gaps.append((cursor, end))
        self.gaps = gaps
        squeezed = sum(b - a for a, b in gaps)
        room = 100.0 - BREAK_WIDTH * len(gaps)
        self.start, self.end = start, end
        self.per_ms = room / max(total - squeezed, 1)

    def x(self, t: int) -> float:
        t = min(max(t, self.start), self.end)
        pos, cursor = 0.0, self.start
        for a, b in self.gaps:
            if t <= a:
                break
            pos += (a - cursor) * self.per_ms
            if t < b:  # inside a break: proportionally within its fixed width
                return pos + BREAK_WIDTH * (t - a) / (b - a)
            pos += BREAK_WIDTH
            cursor = b
        return min(100.0, pos + (t - cursor) * self.per_ms)


def _attempt_marks(scale: _Scale, tried: list[tuple[int, int | None]]) -> list[AttemptMark]:
    """Each failed attempt as a mark inside its step's bar, and the backoff gap until the
    next failed attempt."""
    marks = []
    for i, (started, failed) in enumerate(tried):
        failed = failed if failed is not None else started
        left = scale.x(started)
        width = max(scale.x(failed) - left, 0.3)
        after = tried[i + 1][0] if i + 1 < len(tried) else None
        gap_left = gap_width = None
        title = f"attempt {i + 1} failed after {_human(failed - started)}"
        if after is not None and after > failed:
            gap_left = scale.x(failed)
            gap_width = max(scale.x(after) - gap_left, 0.2)
            title += f", then {_human(after - failed)} backoff"
        marks.append(
            AttemptMark(
                round(left, 3),
                round(width, 3),
                round(gap_left, 3) if gap_left is not None else None,
                round(gap_width, 3) if gap_width is not None else None,
                title,
            )
        )
    return marks


def build(
    workflow: Workflow,
    steps: list[Step],
    now: int,
    attempts: dict[int, list[tuple[int, int | None]]] | None = None,
) -> Timeline:
    """``attempts``: each step's failed attempts as (started, failed) times, in order."""
    finished = workflow.completed_at or (
        None if workflow.status in ("PENDING", "ENQUEUED", "DELAYED") else workflow.updated_at
    )
    start = workflow.started_at_epoch_ms or workflow.created_at
    kinds = [_kind(s) for s in steps]
    spans = [_span(s, k, now) for s, k in zip(steps, kinds, strict=True)]
    end = max([finished or now, *(e for _, e in spans)])
    start = min([start, *(s for s, _ in spans)])
    busy = [part for k, span in zip(kinds, spans, strict=True) for part in _busy(k, span)]
    if not finished:
        busy.append((now, now))  # "now" stays readable, never inside a break
    scale = _Scale(start, end, busy)
    bars = []
    for step, kind, (s, e) in zip(steps, kinds, spans, strict=True):
        left = scale.x(s)
        width = max(scale.x(e) - left, 0.4)
        outcome = (
            "error"
            if step.error_head is not None
            else ("running" if step.completed_at_epoch_ms is None else "ok")
        )
        wake = _wake(step) if kind == "sleep" else None
        tick = scale.x(wake) if wake is not None else None
        tried = (attempts or {}).get(step.function_id, [])
        name = step.function_name
        bars.append(
            Bar(
                step_id=step.function_id,
                name=name,
                short_name=name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…",
                kind=kind,
                outcome=outcome,
                left=round(min(left, 99.6), 3),
                width=round(min(width, 100 - left), 3),
                tick=round(tick, 3) if tick is not None else None,
                wake_label=(
                    f"{'wakes' if wake > now else 'woke'} {_clock(wake)} UTC"
                    if wake is not None
                    else ""
                ),
                wake_side="left" if tick is not None and tick > 50 else "right",
                child_workflow_id=step.child_workflow_id,
                title=f"step {step.function_id}: {name} — {_human(e - s)}"
                + (f", until {_clock(wake)} UTC" if wake is not None else "")
                + (f", {len(tried)} failed attempts" if tried else ""),
                attempts=_attempt_marks(scale, tried),
            )
        )
    breaks = [
        Break(
            left=round(scale.x(a), 3),
            width=BREAK_WIDTH,
            label=f"{_human(b - a)} idle, {_clock(a)} → {_clock(b)} UTC",
        )
        for a, b in scale.gaps
    ]
    deadline = workflow.workflow_deadline_epoch_ms
    deadline_x = scale.x(deadline) if deadline is not None and deadline <= end else None
    now_x = scale.x(now) if not finished and now < end else None
    return Timeline(
        bars,
        breaks,
        round(deadline_x, 3) if deadline_x is not None else None,
        round(now_x, 3) if now_x is not None else None,
        start,
        end,
    )
