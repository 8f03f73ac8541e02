"""Log lines for machines: ``WAYMARK_LOG_FORMAT=json`` writes one JSON object per line.

settings.LOGGING picks the formatter for the console and runworker alike (runworker is a
management command, so Django configures its logging from the same settings). The default stays
the human-readable line of ``console.worker.ActionFormatter``.

Each object carries ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger`` and
``message``, then every ``extra=`` field the call site attached: the stable ``action`` key and,
where the record has them, ``workflow_id``, ``step``, ``trace_id``, ``executor_id``... (a log
shipper indexes whatever is there; listing the keys here would drop the ones added later).
A traceback goes in ``exception`` as text, so a line never spans two lines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_BARE = logging.LogRecord("", logging.INFO, "", 0, "", None, None)
_RECORD_ATTRIBUTES = frozenset(vars(_BARE)) | {"message", "asctime", "taskName"}
# First in every object, in this order, and never overwritten by an extra of the same name.
CORE = ("time", "level", "logger", "message")
# Then these, when present, before the other extras: what a reader looks for first.
LEADING = ("action", "workflow_id", "step", "trace_id")


def _plain(value: Any) -> Any:
    """A JSON-safe value: scalars as they are, containers as JSON if they can be, else text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extras = {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and key not in CORE and not key.startswith("_")
        }
        for key in LEADING:
            if key in extras:
                entry[key] = _plain(extras.pop(key))
        for key, value in extras.items():
            entry[key] = _plain(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines inside strings: one object, one line, always.
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever ``sys.stderr`` is when a line is written, not when logging was
    configured: test runners swap and close the stream they captured Django's setup with.

    stderr, not stdout: management commands print their results on stdout (``workflows list
    --json``), and a log line among them would break a script reading it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr
