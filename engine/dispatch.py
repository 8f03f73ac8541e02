"""Handing claimed workflows to other processes instead of running them here.

An engine built with ``Engine(..., dispatcher=d)`` claims queued workflows within their
queues' limits, as usual (each becomes PENDING under the engine's executor ID), and calls
``d.dispatch(workflow_id)`` instead of running it. The receiving process takes it over with
``engine.take_over(workflow_id, dispatcher_id)`` (a conditional UPDATE: only while it is still
PENDING under the dispatcher), so a duplicated hand-off runs nothing, and a lost one is found
again with ``Handoff.unclaimed``. ``engine.contrib.celery.CeleryDispatcher`` implements it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from engine.store import records

log = logging.getLogger("waymark.dispatch")


@dataclass(frozen=True)
class Handoff:
    """What a dispatcher gets from its engine at launch."""

    # The dispatching engine's executor ID: a handed-out workflow stays PENDING under it until
    # a worker takes it over (pass it along, for take_over).
    executor_id: str
    # Set when the engine shuts down.
    stopping: threading.Event
    # IDs of workflows handed out more than the given seconds ago that no worker took over;
    # each comes back at most once per that many seconds (the query stamps what it returns).
    unclaimed: Callable[[float], list[str]]
    # The application version of everything this engine claims (a claim stamps its own
    # version on the row): send it only to workers that run this version.
    application_version: str = ""


class Dispatcher(Protocol):
    def start(self, handoff: Handoff) -> None:
        """Called once by ``engine.launch()``, before the first ``dispatch``."""

    def dispatch(self, workflow_id: str) -> None:
        """Hand the claimed workflow to a worker; must not raise for a lost broker (the
        workflow stays claimed here and can be handed out again)."""


def explain_untaken(row: records.WorkflowRow | None, dispatcher_id: str, version: str) -> None:
    """Log why a hand-off ran nothing here (a duplicate is normal; a version mismatch is not:
    the workflow stays with the dispatcher for a worker of its own version)."""
    if row is None:
        reason, action = "no such workflow", "handoff.missing"
    elif row.status == "PENDING" and row.executor_id == dispatcher_id:
        reason = (
            f"it belongs to application version {row.application_version!r} and this worker "
            f"runs {version!r}; left untouched for a worker of its version"
        )
        action = "handoff.version_mismatch"
        log.warning(
            "not taking workflow %s: %s",
            row.workflow_id,
            reason,
            extra={"action": action, "workflow_id": row.workflow_id},
        )
        return
    else:
        reason = f"already taken ({row.status} under {row.executor_id})"
        action = "handoff.duplicate"
    log.info(
        "not taking workflow %s: %s",
        row.workflow_id if row is not None else "?",
        reason,
        extra={"action": action},
    )
