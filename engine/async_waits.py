"""How an async workflow waits (a message, an event, a child, a sleep): an asyncio wake-up
registered with the same in-process signals (and LISTEN/NOTIFY, polling) as sync waits, and the
check run on an I/O thread, so a waiting async workflow holds no thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine import clock
from engine import signals as keys
from engine.checkpoints import Fenced, Interrupted
from engine.loop import LoopEvent, Offload
from engine.records import Status
from engine.services import STATUS_RECHECK_S, Services


class Waiter:
    """The waits of one async workflow."""

    def __init__(
        self,
        services: Services,
        offload: Offload,
        workflow_id: str,
        check_running: Callable[[], None],
    ) -> None:
        self._services = services
        self._io = offload.call
        self._workflow_id = workflow_id
        self._check_running = check_running  # raises when the workflow must stop

    async def wait(
        self, until_ms: int | None, watched: Sequence[str], check: Callable[[], Any] | None
    ) -> Any:
        """Until ``check()`` (run on an I/O thread) returns non-None, or ``until_ms`` (None);
        interrupted by a cancel, a timeout or shutdown. Holds no thread while waiting."""
        services = self._services
        wakeups = services.wakeups
        wakeups.listen()
        wake = LoopEvent(asyncio.get_running_loop())
        next_status_check = time.monotonic() + STATUS_RECHECK_S
        with wakeups.watch_with(wake, keys.stop_key(self._workflow_id), *watched):
            while True:
                self._check_running()
                if check is not None:
                    found = await self._io(check)
                    if found is not None:
                        return found
                now = clock.now_ms()
                if until_ms is not None and now >= until_ms:
                    return None
                wait = wakeups.poll_interval if check is not None else STATUS_RECHECK_S
                if until_ms is not None:
                    wait = min(wait, (until_ms - now) / 1000)
                try:
                    await asyncio.wait_for(wake.event.wait(), max(wait, 0.0))
                except TimeoutError:
                    pass
                wake.event.clear()
                if time.monotonic() >= next_status_check:
                    next_status_check = time.monotonic() + STATUS_RECHECK_S
                    store = services.store
                    outcome = await self._io(store.get_workflow_outcome, self._workflow_id)
                    if outcome is not None and outcome.executor_id != services.executor_id:
                        raise Fenced(outcome.executor_id)
                    if outcome is not None and outcome.status != Status.PENDING:
                        raise Interrupted(outcome.status)
