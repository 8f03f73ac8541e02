"""Helpers shared by tests: waiting on a condition (never on a fixed sleep), starting a
server on a free port and knowing when it is ready."""

from __future__ import annotations

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


def serve(
    command: Callable[[int], list[str]], log: Path, limit: float = 60.0, **popen: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``command(port)`` on a free loopback port and wait until it accepts connections.

    A port chosen free can be taken before the server binds it: when the server exits early,
    another port is tried. A server that never gets ready fails the test with its log.
    """
    for _ in range(5):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT, **popen)
        deadline = time.monotonic() + limit
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"{command(port)[:4]} not ready after {limit:.0f} s:\n{log.read_text()[-4000:]}"
            )
    raise AssertionError(f"{command(0)[:4]} kept exiting at start:\n{log.read_text()[-4000:]}")
