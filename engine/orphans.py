"""Orphans: workflows PENDING under this executor that no execution here runs.

A write can commit and still fail for its writer: the connection drops after the server
committed but before its answer came back (a database restart, a network cut). The write is
retried and finds its own work done: a claim finds nothing left to claim, an insert finds the
ID taken, a take-over finds the row taken. What it claimed or created is PENDING under this
executor, which is alive and heartbeating (so no other worker takes it over), and nothing here
runs it: before this module, it waited for this process to restart and recover it.

The worker's sweep adopts such rows, once a write's outcome was in doubt (the store counts
writes that failed with a transient error: only such a write can leave one): a workflow seen
PENDING here with no run here at two sweeps in a row is resumed from its checkpoints, like a
recovery. Otherwise the sweep reads nothing: executor IDs are meant to be unique per process,
but two processes that share one (both left at the default) would take each other's running
workflows for orphans. Two sightings a sweep
interval apart, because between a write's commit and the start of its run the row is PENDING
with no run for a moment; a resume or take-over, whose moment can include reading the steps
back (or retrying through an outage), reserves the row meanwhile (``Runs.claiming``), and the
sweep's resume skips what is reserved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from engine.store import Store

log = logging.getLogger("waymark.orphans")


class Orphans:
    def __init__(
        self,
        store: Store,
        executor_id: str,
        application_version: str,
        running: Callable[[str], bool],
        resume: Callable[[list[str]], int],
    ) -> None:
        self._store = store
        self._executor_id = executor_id
        self._version = application_version
        self._running = running  # whether an execution here holds the workflow
        self._resume = resume  # resumes workflows from their checkpoints; how many resumed
        self._seen: set[str] = set()  # orphaned at the last sweep
        # store.uncertain_writes when a sweep last found no orphan: no look until it moves.
        self._clean_at = store.uncertain_writes

    def sweep(self) -> int:
        """Resume the workflows orphaned at this sweep and the last; how many resumed."""
        uncertain = self._store.uncertain_writes
        if uncertain == self._clean_at and not self._seen:
            return 0
        pending = self._store.recoverable_workflows(self._executor_id, self._version)
        orphaned = {wid for wid in pending if not self._running(wid)}
        adopted, self._seen = orphaned & self._seen, orphaned
        if not orphaned:
            self._clean_at = uncertain
        if not adopted:
            return 0
        ids = sorted(adopted)
        log.warning(
            "resuming %s PENDING under this executor with nothing here running %s (a commit "
            "whose answer was lost?): %s",
            "1 workflow" if len(ids) == 1 else f"{len(ids)} workflows",
            "it" if len(ids) == 1 else "them",
            ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else ""),
            extra={"action": "workflow.orphaned", "workflows": len(ids)},
        )
        self._seen -= adopted
        return self._resume(ids)
