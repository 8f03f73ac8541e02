"""What each kind of rule reads, and when it fires. The readings are the ones ``/metrics``
exports (console/gauges.py), so a rule and a Prometheus alert on the same gauge agree."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

from console import gauges, stats
from console.alerts.models import AlertRule, Kind
from console.models import Executor, Workflow
from engine.records import Status


@dataclass(frozen=True)
class Reading:
    value: float
    firing: bool
    summary: str


@dataclass
class Context:
    """What one evaluation pass shares between its rules (read once per pass, when needed)."""

    now_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    @cached_property
    def live(self) -> list[Executor]:
        return stats.live_executors(self.now_ms)

    @cached_property
    def schedule_lag(self) -> dict[str, float]:
        return gauges.schedule_lag(self.live, self.now_ms)


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _failures(rule: AlertRule, ctx: Context) -> Reading:
    since = ctx.now_ms - rule.window_seconds * 1000
    recent = Workflow.objects.filter(name=rule.target, created_at__gte=since).order_by(
        "-created_at"
    )
    counts = gauges.status_counts(recent)
    errors = counts.get(Status.ERROR.value, 0)
    finished = sum(counts.get(s, 0) for s in gauges.FINAL)
    window = _span(rule.window_seconds)
    if rule.rate:
        rate = errors / finished * 100 if finished else 0.0
        return Reading(
            rate,
            rate > rule.threshold,
            f"{rate:.1f}% of {finished} finished {rule.target} workflows failed in the last "
            f"{window} (threshold {rule.threshold:g}%)",
        )
    return Reading(
        errors,
        errors > rule.threshold,
        f"{errors} {rule.target} workflows failed in the last {window} "
        f"(threshold {rule.threshold:g})",
    )


def _queue_age(rule: AlertRule, ctx: Context) -> Reading:
    count, oldest = gauges.queue_backlog(rule.target)
    age = max(0.0, (ctx.now_ms - oldest) / 1000) if oldest is not None else 0.0
    return Reading(
        age,
        age > rule.threshold,
        f"the oldest of {count:,}{'+' if count >= gauges.CAP else ''} workflows waiting on "
        f"queue {rule.target} has waited {age:.0f} s (threshold {rule.threshold:g} s)",
    )


def _stranded(rule: AlertRule, ctx: Context) -> Reading:
    n = gauges.stranded(ctx.live)
    return Reading(
        n,
        n > rule.threshold,
        f"{n:,}{'+' if n >= gauges.CAP else ''} PENDING/ENQUEUED workflows are pinned to a "
        f"version no live executor runs (threshold {rule.threshold:g})",
    )


def _no_executor(rule: AlertRule, ctx: Context) -> Reading:
    n = sum(1 for e in ctx.live if e.application_version == rule.target)
    return Reading(
        n,
        n == 0,
        f"{n} live executors run application version {rule.target}",
    )


def _schedule_missed(rule: AlertRule, ctx: Context) -> Reading:
    lags = ctx.schedule_lag
    if rule.target:
        chosen = {rule.target: lags[rule.target]} if rule.target in lags else {}
    else:
        chosen = lags
    if not chosen:
        what = f"schedule {rule.target}" if rule.target else "no schedule"
        return Reading(0.0, False, f"{what} is declared by a live executor")
    name, lag = max(chosen.items(), key=lambda item: item[1])
    return Reading(
        lag,
        lag > rule.threshold,
        f"schedule {name} is {lag:.0f} s past a tick that did not run (grace {rule.threshold:g} s)",
    )


def _pending_too_long(rule: AlertRule, ctx: Context) -> Reading:
    cutoff = ctx.now_ms - rule.window_seconds * 1000
    qs = Workflow.objects.filter(status=Status.PENDING.value, created_at__lt=cutoff)
    if rule.target:
        qs = qs.filter(name=rule.target)
    n = gauges.capped(qs.values("pk"), gauges.CAP)
    what = f"{rule.target} workflows" if rule.target else "workflows"
    return Reading(
        n,
        n > rule.threshold,
        f"{n:,}{'+' if n >= gauges.CAP else ''} {what} have been PENDING for more than "
        f"{_span(rule.window_seconds)} (threshold {rule.threshold:g})",
    )


READERS = {
    Kind.FAILURES: _failures,
    Kind.QUEUE_AGE: _queue_age,
    Kind.STRANDED: _stranded,
    Kind.NO_EXECUTOR: _no_executor,
    Kind.SCHEDULE_MISSED: _schedule_missed,
    Kind.PENDING_TOO_LONG: _pending_too_long,
}


def evaluate(rule: AlertRule, ctx: Context) -> Reading:
    return READERS[Kind(rule.kind)](rule, ctx)


def condition(rule: AlertRule) -> str:
    """The rule in words, for its page, the audit trail and notifications' context."""
    t, window = rule.threshold, _span(rule.window_seconds)
    match Kind(rule.kind):
        case Kind.FAILURES if rule.rate:
            return f"failure rate of {rule.target} above {t:g}% over {window}"
        case Kind.FAILURES:
            return f"more than {t:g} {rule.target} failures in {window}"
        case Kind.QUEUE_AGE:
            return f"oldest workflow on queue {rule.target} waiting more than {t:g} s"
        case Kind.STRANDED:
            return f"more than {t:g} stranded workflows"
        case Kind.NO_EXECUTOR:
            return f"no live executor runs version {rule.target}"
        case Kind.SCHEDULE_MISSED:
            which = f"schedule {rule.target}" if rule.target else "any schedule"
            return f"{which} misses a tick by more than {t:g} s"
        case Kind.PENDING_TOO_LONG:
            what = f"{rule.target} workflows" if rule.target else "workflows"
            return f"more than {t:g} {what} PENDING longer than {window}"
    return rule.kind  # pragma: no cover (every kind is matched above)
