"""Where a run's CPU goes: this process, and the Postgres backends that served it.

W2 and the concurrent floor share two cores with the Postgres server: the CPU each workflow
costs on both sides tells whether a run was bound by CPU or by waiting. The backends are found
by the application_name their connections carry (``PGAPPNAME``, read by libpq when a connection
opens), and their CPU read from /proc: only for a server on this machine, else None.
"""

from __future__ import annotations

import os
import resource
import uuid
from types import TracebackType

import psycopg

_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _backend_cpu(pid: int) -> float | None:
    """User + system seconds of a local process, None when it is not on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (proc(5))


class CpuMeter:
    """``with CpuMeter(url) as meter``: connections opened inside carry its tag; ``start()``
    after the warm-up, ``stop(n)`` before the connections close; then ``figures``."""

    def __init__(self, url: str | None) -> None:
        self._url = url  # the Postgres server's URL; None: SQLite, this process only
        self._tag = f"waymark-bench-{uuid.uuid4().hex[:8]}"
        self._saved: str | None = None
        self._process = 0.0
        self._backends: dict[int, float] = {}
        self.figures: dict[str, float | None] = {}

    def __enter__(self) -> CpuMeter:
        self._saved = os.environ.get("PGAPPNAME")
        os.environ["PGAPPNAME"] = self._tag
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._saved is None:
            os.environ.pop("PGAPPNAME", None)
        else:
            os.environ["PGAPPNAME"] = self._saved

    def _pids(self) -> list[int]:
        assert self._url is not None
        with psycopg.connect(self._url, autocommit=True, application_name="bench-probe") as c:
            rows = c.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self._tag,)
            ).fetchall()
        return [row[0] for row in rows]

    def start(self) -> None:
        self._process = _process_cpu()
        if self._url is not None:
            found = {pid: _backend_cpu(pid) for pid in self._pids()}
            self._backends = {pid: cpu for pid, cpu in found.items() if cpu is not None}

    def stop(self, n: int) -> None:
        """Microseconds of CPU per workflow since ``start()``: this process, and the backends
        (those opened since count whole; one that closed before now is missed)."""
        figures: dict[str, float | None] = {
            "python_cpu_us": round(1e6 * (_process_cpu() - self._process) / n)
        }
        if self._url is not None:
            total, local = 0.0, False
            for pid in self._pids():
                now = _backend_cpu(pid)
                if now is not None:
                    total += now - self._backends.get(pid, 0.0)
                    local = True
            figures["db_cpu_us"] = round(1e6 * total / n) if local else None
        self.figures = figures
