"""Private PostgreSQL and Redis servers for the fault tests.

Tests never stop, restart or reconfigure the machine's shared services (127.0.0.1:5432 and
:6379): a test that must take a server away starts its own here, in a temporary directory, on a
free loopback port, and it is always stopped and removed afterwards, even when the test fails.

    with private_postgres() as (url, pg):   # pg.stop() / pg.start() / pg.restart()
    with private_redis() as (url, redis):
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support import free_port

PG_BIN = Path(os.environ.get("WAYMARK_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
READY_WITHIN_S = 30.0
START_ATTEMPTS = 5  # a "free" port can be taken between our probe and the server's bind


class ServiceError(RuntimeError):
    """A private server did not start; the message carries its log."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _bind_failed(log: str) -> bool:
    return "Address already in use" in log or "could not bind" in log


def _wait_ready(ready: Callable[[], bool], alive: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            raise ServiceError(f"{what} exited while starting; its log:\n{_tail(log)}")
        time.sleep(0.05)
    raise ServiceError(f"{what} not ready within {READY_WITHIN_S:.0f} s; its log:\n{_tail(log)}")


class PrivatePostgres:
    """A throwaway cluster: initdb'd in a temp dir, served by pg_ctl on a loopback port.

    Postgres refuses to run as root, so as root every command runs as the ``postgres`` OS user
    (the directory is handed to that user)."""

    def __init__(self) -> None:
        self.as_user: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="waymark-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def init(self) -> None:
        done = self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        if done.returncode != 0:
            raise ServiceError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """Start on ``self.port`` (a new free port the first time); retried on a bind race."""
        first = self.port == 0
        for _ in range(START_ATTEMPTS):
            if first:
                self.port = free_port()
            self.log.unlink(missing_ok=True)
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                # Speed over crash safety: this cluster lives for one test, and its restarts
                # are clean (fast shutdown writes a checkpoint), so nothing is lost.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            # -w: pg_ctl polls until the server accepts connections (or gives up after -t).
            done = self._run(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                "-o", options, "-w", "-t", str(int(READY_WITHIN_S)), "start",
            )  # fmt: skip
            if done.returncode == 0:
                what = f"private Postgres on {self.port}"
                _wait_ready(self._accepts, self._running, what, self.log)
                return
            log = _tail(self.log)
            self.stop("immediate")  # a server that came up halfway must not linger
            if not _bind_failed(log):
                raise ServiceError(f"private Postgres did not start: {done.stderr}\n{log}")
            time.sleep(0.2)
        raise ServiceError(f"private Postgres found no free port; last log:\n{_tail(self.log)}")

    def _running(self) -> bool:
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status").returncode == 0

    def _accepts(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
            return True
        except psycopg.Error:
            return False

    def stop(self, mode: str = "fast") -> None:
        if self._running():
            done = self._run(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"
            )
            if done.returncode != 0:
                raise ServiceError(f"pg_ctl stop failed: {done.stderr}\n{_tail(self.log)}")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except (ServiceError, subprocess.TimeoutExpired):
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # pg_ctl could not stop it: kill the postmaster itself
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[tuple[str, PrivatePostgres]]:
    """A private Postgres cluster: yields (URL, handle); stopped and removed at the end."""
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server.url, server
    finally:
        server.remove()


def postgres_binaries_missing() -> str | None:
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            return f"needs {PG_BIN / tool} for a private Postgres"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root needs runuser to start Postgres as the postgres user"
    return None


class PrivateRedis:
    """A throwaway redis-server (no persistence) that this process owns."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="waymark-redis-"))
        self.log = self.dir / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        first = self.port == 0
        for _ in range(START_ATTEMPTS):
            if first:
                self.port = free_port()
            self.log.unlink(missing_ok=True)
            self.proc = subprocess.Popen(
                [
                    "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                    "--logfile", str(self.log), "--daemonize", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                _wait_ready(self._pong, self._alive, f"private Redis on {self.port}", self.log)
                return
            except ServiceError:
                self.stop()
                if not _bind_failed(_tail(self.log)):
                    raise
                time.sleep(0.2)
        raise ServiceError(f"private Redis found no free port; last log:\n{_tail(self.log)}")

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _pong(self) -> bool:
        """Ours answers: another redis-server that won the race for the port would answer
        PING too, so the server must also name our process as its own."""
        if self.proc is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"INFO server\r\n")
                sock.settimeout(2)
                reply = b""
                while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return f"process_id:{self.proc.pid}\r\n".encode() in reply

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # redis-server shuts down on SIGTERM (nothing to save)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def redis_binary_missing() -> str | None:
    if shutil.which("redis-server") is None:
        return "needs redis-server on PATH for a private Redis (apt-get install redis-server)"
    return None


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, PrivateRedis]]:
    """A private Redis: yields (URL, handle); stopped and removed at the end."""
    server = PrivateRedis()
    try:
        server.start()
        yield server.url, server
    finally:
        server.remove()


RABBITMQ_BIN = Path(os.environ.get("WAYMARK_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
RABBITMQ_READY_WITHIN_S = 120.0  # an Erlang VM boots slowly on a loaded machine


def rabbitmq_binaries_missing() -> str | None:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return f"no rabbitmq-server in {RABBITMQ_BIN} (set WAYMARK_TEST_RABBITMQ_BIN)"
    return None


class PrivateRabbitMQ:
    """A throwaway RabbitMQ node of this process: its own node name, AMQP port, distribution
    port, epmd (on a private port: the machine's epmd and shared RabbitMQ are never touched),
    HOME (Erlang cookie), data and logs, all in a temporary directory; no plugins."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="waymark-rabbitmq-"))
        self.log = self.dir / "rabbitmq.log"
        self.port = free_port()
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (self.dir / "plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        d = str(self.dir)
        return {
            **os.environ,
            "HOME": d,
            "RABBITMQ_NODENAME": f"waymark{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_BASE": d,
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/plugins",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq",
            "RABBITMQ_PID_FILE": f"{d}/pid",
            "RABBITMQ_LOGS": "-",
        }

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its Erlang VM and helpers in one group we can stop
        )
        deadline = time.monotonic() + RABBITMQ_READY_WITHIN_S
        while time.monotonic() < deadline:
            if "Server startup complete" in self.log.read_text(errors="replace") and self._open():
                return
            if self.proc.poll() is not None:
                raise ServiceError(f"private RabbitMQ exited while starting:\n{_tail(self.log)}")
            time.sleep(0.2)
        raise ServiceError(f"private RabbitMQ not ready in time:\n{_tail(self.log)}")

    def _open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # A restart must find the log's "startup complete" anew.
        self.log.write_text("")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            self._stop_epmd()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_epmd(self) -> None:
        """The private epmd (on our own port) outlives the node: stop it by its port."""
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"],
            env=self._env(),
            capture_output=True,
            timeout=20,
            check=False,
        )


@contextlib.contextmanager
def private_rabbitmq() -> Iterator[tuple[str, PrivateRabbitMQ]]:
    """A private RabbitMQ: yields (URL, handle); stopped and removed at the end."""
    server = PrivateRabbitMQ()
    try:
        server.start()
        yield server.url, server
    finally:
        server.remove()
