"""The workflows this process is executing (or has parked), by ID: what awaiters here wait on,
what the worker loop counts against its capacity, what shutdown drains."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

from engine.store import records
from engine.threads import Latch


class Run:
    """One execution here. In-process awaiters wait on ``done``."""

    __slots__ = (
        "created_at",
        "deadline_armed",
        "done",
        "ended",
        "name",
        "outcome",
        "parked",
        "queue_name",
        "stopped",
    )

    def __init__(self, queue_name: str | None = None) -> None:
        self.queue_name = queue_name
        self.done = Latch()
        # The final outcome, or None when the execution stopped without one (shutdown, the
        # database lost, the workflow taken over): awaiters then ask the database.
        self.outcome: records.Outcome | None = None
        self.stopped: str | None = None  # set by a cancel or a timeout seen in this process
        self.parked = False  # in a long durable sleep: no thread, a timer will resume it
        self.deadline_armed = False
        self.ended = False  # set once, by the first end (see Runs.end)
        self.name = ""  # the workflow's registered name, and its row's creation (epoch ms):
        self.created_at = 0  # what metrics and traces report when it ends


class Runs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        # Workflow ID -> the thread claiming it here, from its claim to the start of its run.
        self._claiming: dict[str, int] = {}

    @contextlib.contextmanager
    def claiming(self, workflow_ids: Iterable[str]) -> Iterator[list[str]]:
        """Reserve those of ``workflow_ids`` that neither run nor are being claimed here, for
        this thread, until the block ends; yields them. Claims of one PENDING row of this
        executor (a resume after a database outage, the orphan sweep's, a Celery take-over)
        then run it once, and no other thread begins a run of a reserved ID."""
        me = threading.get_ident()
        with self._lock:
            free = [w for w in workflow_ids if w not in self._runs and w not in self._claiming]
            self._claiming.update(dict.fromkeys(free, me))
        try:
            yield free
        finally:
            with self._lock:
                for workflow_id in free:
                    del self._claiming[workflow_id]

    def begin(self, workflow_id: str, queue_name: str | None, *, replace: bool) -> Run | None:
        """A new run of the workflow; None when another thread is claiming it, or when it runs
        here already and ``replace`` is False. ``replace``: a run still winding down here (a
        cancelled one, resumed at once) gives way to the new one."""
        with self._lock:
            holder = self._claiming.get(workflow_id)
            if holder is not None and holder != threading.get_ident():
                return None
            if not replace and workflow_id in self._runs:
                return None
            run = self._runs[workflow_id] = Run(queue_name)
        return run

    def get(self, workflow_id: str) -> Run | None:
        return self._runs.get(workflow_id)

    def __contains__(self, workflow_id: str) -> bool:
        return workflow_id in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def end(self, workflow_id: str, run: Run) -> bool:
        """Forget ``run`` (unless another execution of the workflow replaced it meanwhile).
        False when it had ended already: a parked run can be ended by a cancel and by a
        wake-up at the same moment, and only the first may report its end."""
        with self._lock:
            if run.ended:
                return False
            run.ended = True
            if self._runs.get(workflow_id) is run:
                del self._runs[workflow_id]
            return True

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def busy(self) -> int:
        """Runs holding a thread (not parked)."""
        with self._lock:
            return sum(1 for run in self._runs.values() if not run.parked)

    def parked(self) -> int:
        with self._lock:
            return sum(1 for run in self._runs.values() if run.parked)

    def running_on(self, queue_name: str) -> int:
        with self._lock:
            return sum(1 for run in self._runs.values() if run.queue_name == queue_name)

    def first_active(self) -> Run | None:
        """Any run holding a thread, or None."""
        with self._lock:
            return next((run for run in self._runs.values() if not run.parked), None)

    def drain(self) -> list[Run]:
        """Forget every run and return them."""
        with self._lock:
            left = list(self._runs.values())
            self._runs.clear()
        return left
