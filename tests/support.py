"""Helpers shared by tests: waiting on a condition (never on a fixed sleep), starting a
server on a free port and knowing when it is ready."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_until(
    predicate: Callable[[], object], limit: float = 30.0, what: str = "the condition"
) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A port free right now; a server started on it may still lose a race, see serve()."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_sockets(port: int) -> set[str]:
    """The ``socket:[inode]`` names of the loopback-or-any listeners on ``port`` (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.add(f"socket:[{inode}]")
    return found


def _process_tree(pid: int) -> set[int]:
    """``pid`` and every process descended from it (gunicorn workers, runserver's child)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return tree


def owns_port(pid: int, port: int) -> bool:
    """True when ``pid`` or one of its descendants listens on ``port``.

    Answering on the port is not enough: a port chosen free can be bound by another process
    (another checkout's suite on this machine) before our server binds it, and then that
    process answers while ours fails to start."""
    sockets = _listening_sockets(port)
    if not sockets:
        return False
    for member in _process_tree(pid):
        try:
            fds = list(Path(f"/proc/{member}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in sockets:
                    return True
            except OSError:
                continue
    return False


def serve(
    command: Callable[[int], list[str]], log: Path, limit: float = 60.0, **popen: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``command(port)`` on a free loopback port and wait until it accepts connections.

    A port chosen free can be taken before the server binds it: ready means the server itself
    listens (``owns_port``), not that something answers; when the server exits early, another
    port is tried. A server that never gets ready fails the test with its log.
    """
    for _ in range(5):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT, **popen)
        deadline = time.monotonic() + limit
        while proc.poll() is None and time.monotonic() < deadline:
            if owns_port(proc.pid, port):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return proc, port
                except OSError:
                    pass  # bound, not accepting yet
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"{command(port)[:4]} not ready after {limit:.0f} s:\n{log.read_text()[-4000:]}"
            )
    raise AssertionError(f"{command(0)[:4]} kept exiting at start:\n{log.read_text()[-4000:]}")


# A time on the console: the time of day, with the date when it is not today (a test run
# shortly before midnight UTC sees tomorrow's date on anything an hour ahead).
CLOCK = r"(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC"
