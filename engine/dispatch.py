"""Handing claimed workflows to other processes instead of running them here.

An engine built with ``Engine(..., dispatcher=d)`` claims queued workflows within their
queues' limits, as usual (each becomes PENDING under the engine's executor ID), and calls
``d.dispatch(workflow_id)`` instead of running it. The receiving process takes it over with
``engine.take_over(workflow_id, dispatcher_id)`` (a conditional UPDATE: only while it is still
PENDING under the dispatcher), so a duplicated hand-off runs nothing, and a lost one is found
again with ``Handoff.unclaimed``. ``engine.contrib.celery.CeleryDispatcher`` implements it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Handoff:
    """What a dispatcher gets from its engine at launch."""

    # The dispatching engine's executor ID: a handed-out workflow stays PENDING under it until
    # a worker takes it over (pass it along, for take_over).
    executor_id: str
    # Set when the engine shuts down.
    stopping: threading.Event
    # IDs of workflows handed out more than the given seconds ago that no worker took over.
    unclaimed: Callable[[float], list[str]]


class Dispatcher(Protocol):
    def start(self, handoff: Handoff) -> None:
        """Called once by ``engine.launch()``, before the first ``dispatch``."""

    def dispatch(self, workflow_id: str) -> None:
        """Hand the claimed workflow to a worker; must not raise for a lost broker (the
        workflow stays claimed here and can be handed out again)."""
