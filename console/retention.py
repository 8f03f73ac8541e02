"""The retention policy: keep finished workflows N days and/or at most M of them, with
overrides per workflow name (settings WAYMARK_RETENTION_*). ``runworker`` applies it every
WAYMARK_RETENTION_INTERVAL seconds in small batches (engine.lifecycle: never an unfinished
workflow, never a child of an unfinished parent; the audit trail is the console's own table and
is never touched) and records each pass (RetentionRun), which the console's page shows."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from console.models import RetentionRun
from engine.lifecycle import Lifecycle

log = logging.getLogger("waymark.console")

PASS_LIMIT = 10_000  # workflows one pass deletes at most per rule (the next pass goes on)


@dataclass(frozen=True)
class Rule:
    days: float | None = None
    max: int | None = None

    @property
    def active(self) -> bool:
        return self.days is not None or self.max is not None

    def describe(self) -> str:
        parts = []
        if self.days is not None:
            parts.append(f"{self.days:g} days")
        if self.max is not None:
            parts.append(f"at most {self.max:,}")
        return " and ".join(parts) or "forever"


@dataclass(frozen=True)
class Policy:
    default: Rule = Rule()
    overrides: dict[str, Rule] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.default.active or any(r.active for r in self.overrides.values())

    def as_dict(self) -> dict[str, Any]:
        rule = lambda r: {"days": r.days, "max": r.max}  # noqa: E731
        return {
            "default": rule(self.default),
            "overrides": {n: rule(r) for n, r in self.overrides.items()},
        }


def _rule(days: Any, most: Any, what: str) -> Rule:
    try:
        d = float(days) if days not in (None, "") else None
        m = int(most) if most not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"retention {what}: days must be a number, max an integer") from exc
    if (d is not None and d < 0) or (m is not None and m < 0):
        raise ValueError(f"retention {what}: days and max must be >= 0")
    return Rule(d, m)


def policy() -> Policy:
    """The policy the settings describe (ValueError when they are malformed)."""
    default = _rule(settings.WAYMARK_RETENTION_DAYS, settings.WAYMARK_RETENTION_MAX, "default")
    raw = settings.WAYMARK_RETENTION_OVERRIDES or "{}"
    try:
        found = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ValueError(f"WAYMARK_RETENTION_OVERRIDES is not JSON: {exc}") from exc
    if not isinstance(found, dict):
        raise ValueError('WAYMARK_RETENTION_OVERRIDES must be {"name": {"days": N, "max": M}}')
    overrides = {
        str(name): _rule(r.get("days"), r.get("max"), repr(name))
        for name, r in found.items()
        if isinstance(r, dict)
    }
    return Policy(default, overrides)


def apply(lifecycle: Lifecycle, rules: Policy, limit: int = PASS_LIMIT) -> dict[str, int]:
    """One pass: each override for its name, then the default for every other name."""
    deleted: dict[str, int] = {}
    for name, rule in rules.overrides.items():
        if rule.active:
            deleted[name] = lifecycle.garbage_collect(
                older_than=(rule.days or 0) * 86400, keep_last=rule.max, name=name, limit=limit
            )
    if rules.default.active:
        deleted["*"] = lifecycle.garbage_collect(
            older_than=(rules.default.days or 0) * 86400,
            keep_last=rules.default.max,
            exclude=list(rules.overrides),
            limit=limit,
        )
    return deleted


def run_once(lifecycle: Lifecycle, executor_id: str = "") -> RetentionRun:
    """Apply the policy once and record the pass."""
    rules = policy()
    record = RetentionRun.objects.create(executor_id=executor_id, policy=rules.as_dict())
    try:
        by_name = apply(lifecycle, rules)
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        log.exception("retention pass failed", extra={"action": "retention.failed"})
        by_name = {}
    record.by_name = by_name
    record.deleted = sum(by_name.values())
    record.finished_at = timezone.now()
    record.save()
    log.info(
        "retention deleted %d finished workflows",
        record.deleted,
        extra={"action": "retention.pass", "deleted": record.deleted},
    )
    return record


def start(lifecycle: Lifecycle, executor_id: str, stop: threading.Event) -> bool:
    """Apply the policy every WAYMARK_RETENTION_INTERVAL seconds until ``stop`` (a daemon
    thread); False when no policy is configured."""
    if not policy().active:
        return False

    def loop() -> None:
        while not stop.is_set():
            try:
                run_once(lifecycle, executor_id)
            except Exception:
                log.exception("retention pass failed", extra={"action": "retention.failed"})
            stop.wait(settings.WAYMARK_RETENTION_INTERVAL)

    threading.Thread(target=loop, name="waymark-retention", daemon=True).start()
    return True
