"""The step timeline, laid out on the server: one row per step, bars positioned in percent.

Long idle stretches (a durable sleep of hours) are compressed into a labelled break so the
work around them stays readable; the deadline is a vertical line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from console.models import Step, Workflow

BREAK_WIDTH = 4.0  # percent of the width a compressed gap takes
MIN_BREAK_MS = 60_000  # gaps shorter than this are never compressed
BREAK_SHARE = 0.2  # ...nor those shorter than this share of the whole span
NAME_CHARS = 40

WAITS = {"waymark.recv", "waymark.get_event", "waymark.get_result"}
MARKERS = {
    "waymark.send": "message",
    "waymark.set_event": "event",
    "waymark.recv.timeout": "timer",
    "waymark.get_event.timeout": "timer",
}


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
    child_workflow_id: str | None
    title: str


@dataclass
class Break:
    left: float
    label: str


@dataclass
class Timeline:
    bars: list[Bar]
    breaks: list[Break]
    deadline: float | None
    start_ms: int
    end_ms: int


def _kind(step: Step) -> str:
    if step.function_name == "waymark.sleep":
        return "sleep"
    if step.function_name in WAITS:
        return "wait"
    if step.function_name in MARKERS:
        return MARKERS[step.function_name]
    if step.child_workflow_id:
        return "child"
    return "compute"


def _span(step: Step, kind: str, now: int) -> tuple[int, int]:
    start = step.started_at_epoch_ms or step.completed_at_epoch_ms or now
    end = step.completed_at_epoch_ms or now
    if kind == "sleep" and step.output_head:
        try:
            end = max(end, min(int(json.loads(step.output_head)), now))
        except (ValueError, TypeError):
            pass
    return start, max(end, start)


def _human(ms: int) -> str:
    seconds = ms / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


class _Scale:
    """Maps epoch ms to percent, with long idle gaps squeezed into fixed-width breaks."""

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


def build(workflow: Workflow, steps: list[Step], now: int) -> Timeline:
    finished = workflow.completed_at or (
        None if workflow.status in ("PENDING", "ENQUEUED", "DELAYED") else workflow.updated_at
    )
    start = workflow.started_at_epoch_ms or workflow.created_at
    kinds = [_kind(s) for s in steps]
    spans = [_span(s, k, now) for s, k in zip(steps, kinds, strict=True)]
    end = max([finished or now, *(e for _, e in spans)]) if spans else (finished or now)
    start = min([start, *(s for s, _ in spans)])
    scale = _Scale(start, end, spans)
    bars = []
    for step, kind, (s, e) in zip(steps, kinds, spans, strict=True):
        left = scale.x(s)
        width = max(scale.x(e) - left, 0.4)
        outcome = (
            "error"
            if step.error_head is not None
            else ("running" if step.completed_at_epoch_ms is None else "ok")
        )
        tick = None
        if kind == "sleep" and step.output_head:
            try:
                tick = scale.x(int(json.loads(step.output_head)))
            except (ValueError, TypeError):
                tick = None
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
                tick=round(tick, 3) if tick else None,
                child_workflow_id=step.child_workflow_id,
                title=f"step {step.function_id}: {name} — {_human(e - s)}",
            )
        )
    breaks = [
        Break(left=round(scale.x(a), 3), label=f"{_human(b - a)} idle") for a, b in scale.gaps
    ]
    deadline = workflow.workflow_deadline_epoch_ms
    deadline_x = scale.x(deadline) if deadline is not None and deadline <= end else None
    return Timeline(bars, breaks, round(deadline_x, 3) if deadline_x else None, start, end)
