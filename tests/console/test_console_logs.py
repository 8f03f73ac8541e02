"""Logs: WAYMARK_LOG_FORMAT=json makes the console and runworker write one JSON object per line;
the default stays the human-readable ``action=`` line."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from console import logs
from engine import Client
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def record(message: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("the <cause>")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord(
        "waymark.engine", logging.WARNING, __file__, 1, message, args, exc_info
    )
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_carry_the_core_fields_then_the_extras() -> None:
    line = logs.JsonFormatter().format(
        record(
            "workflow %s\nfinished",
            "w-1",
            action="workflow.finish",
            workflow_id="w-1",
            step=3,
            trace_id="abc",
            executor_id="ex-1",
        )
    )
    assert "\n" not in line  # one object, one line, even with a newline in the message
    entry = json.loads(line)
    assert list(entry)[:8] == [
        "time",
        "level",
        "logger",
        "message",
        "action",
        "workflow_id",
        "step",
        "trace_id",
    ]
    assert entry["level"] == "WARNING" and entry["logger"] == "waymark.engine"
    assert entry["message"] == "workflow w-1\nfinished"
    assert entry["action"] == "workflow.finish" and entry["step"] == 3
    assert entry["executor_id"] == "ex-1"
    assert entry["time"].endswith("+00:00")


def test_json_lines_survive_odd_values_and_keep_tracebacks() -> None:
    entry = json.loads(
        logs.JsonFormatter().format(
            record("boom", exc=True, action="x.y", thing=object(), time="not the time")
        )
    )
    assert entry["thing"].startswith("<object object")  # not JSON: its text
    assert entry["time"] != "not the time"  # an extra never overwrites a core field
    assert "ValueError: the <cause>" in entry["exception"]
    plain = json.loads(logs.JsonFormatter().format(record("no extras")))
    assert "action" not in plain and "workflow_id" not in plain


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


EMIT = """
    import logging
    import django
    django.setup()
    logging.getLogger("waymark.engine").info(
        "workflow w-1 started", extra={"action": "workflow.start", "workflow_id": "w-1"})
    logging.getLogger("console.alerts").info("evaluated", extra={"action": "alerts.pass"})
    logging.getLogger("django.request").error("Internal Server Error: /x")
"""


def test_settings_send_console_logs_as_json_when_asked(tmp_path) -> None:
    done = run_python(
        EMIT,
        WAYMARK_LOG_FORMAT="json",
        DEBUG="0",
        SECRET_KEY="k" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # stdout stays for commands' own output
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(e["logger"], e["level"], e.get("action")) for e in lines] == [
        ("waymark.engine", "INFO", "workflow.start"),
        ("console.alerts", "INFO", "alerts.pass"),
        ("django.request", "ERROR", None),
    ]
    assert lines[0]["workflow_id"] == "w-1"


def test_default_log_lines_stay_human_readable(tmp_path) -> None:
    done = run_python(EMIT, DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()  # then Django's own DEBUG-mode line for the 500
    assert len(lines) == 3 and done.stdout == ""
    assert "INFO    action=workflow.start workflow w-1 started" in lines[0]
    assert not lines[0].startswith("{")


def test_an_unknown_log_format_is_refused_with_the_choices(tmp_path) -> None:
    done = run_python(EMIT, WAYMARK_LOG_FORMAT="xml")
    assert done.returncode != 0
    assert "WAYMARK_LOG_FORMAT='xml': use text or json" in done.stderr


def test_runworker_writes_json_lines(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    with Client(url) as client:
        workflow_id = client.start_workflow("tracked", 1).workflow_id
    env = {
        **os.environ,
        "WAYMARK_LOG_FORMAT": "json",
        "WAYMARK_DATABASE_URL": url,
        "WAYMARK_APP": "tests.apps.workerapp:build",
        "WAYMARK_APP_NAME": "workerapp",
        "WAYMARK_TEST_LEDGER": str(tmp_path / "ledger.txt"),
        "WAYMARK_TEST_SCHEDULE": "0 0 1 1 *",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--executor-id", "json-1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: '"action": "workflow.finish"' in out_path.read_text(),
            limit=60,
            what="runworker to log the workflow's finish",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    entries = [json.loads(line) for line in out_path.read_text().splitlines()]  # all JSON
    actions = {e.get("action") for e in entries}
    assert {"worker.start", "engine.launch", "workflow.start", "workflow.finish"} <= actions
    assert {"worker.stop", "engine.drain"} <= actions
    finish = next(e for e in entries if e.get("action") == "workflow.finish")
    assert finish["workflow_id"] == workflow_id and finish["status"] == "SUCCESS"
