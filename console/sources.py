"""Sources: the databases the console can open. Waymark's own (the default), and any listed in
``WAYMARK_SOURCES``, a JSON list of ``{"name", "kind": "waymark" | "dbos", "url", "schema"}``.

A request picks one with ``?source=NAME`` (console/middleware.py resolves it into
``request.source`` and the contextvar here); the router sends the system-table models to that
source's database alias, so views need not know which database they read.

A DBOS source (a dbos-py 3.x / DBOS Go 1.x system database) is read, never migrated: on each
new connection its ``dbos_migrations`` version is checked, and *temporary* views (``pg_temp`` /
SQLite's ``temp``, gone with the connection, nothing written to the DBOS schema) give its
tables the shapes the console reads: inputs and outputs joined in from ``workflow_input`` /
``workflow_output``, DBOS step names mapped to the engine's (``DBOS.sleep``'s wake-up from
epoch seconds to ms), only unconsumed messages, and an empty ``executors`` (DBOS keeps no
heartbeats: liveness is "unknown", see ``liveness_known``).
"""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from console.dburl import database_config

KINDS = ("waymark", "dbos")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
# dbos_migrations versions whose tables this console reads: 109 moved inputs and outputs to
# workflow_input / workflow_output; 125 is dbos-py 3.4's (checked by the tests).
DBOS_VERSIONS = range(109, 126)
VIEWS = Path(__file__).resolve().parent / "sql"


class SourceError(Exception):
    """A source that cannot be opened: unknown name, or a schema this console cannot read."""


@dataclass(frozen=True)
class Source:
    name: str  # "" for the engine's own database
    kind: str
    url: str
    schema: str

    @property
    def alias(self) -> str:
        return "waymark" if not self.name else f"source_{self.name}"

    @property
    def is_dbos(self) -> bool:
        return self.kind == "dbos"

    @property
    def liveness_known(self) -> bool:
        """Whether executors heartbeat here (DBOS keeps no executors table)."""
        return not self.is_dbos

    @property
    def label(self) -> str:
        return self.name or "waymark"


def parse(text: str) -> list[dict[str, str]]:
    """Validate WAYMARK_SOURCES (at settings load: a bad list stops the console at start)."""
    if not text.strip():
        return []
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise RuntimeError(f"WAYMARK_SOURCES is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise RuntimeError("WAYMARK_SOURCES must be a JSON list of sources")
    found: list[dict[str, str]] = []
    for item in items:
        if not isinstance(item, dict) or not {"name", "kind", "url"} <= item.keys():
            raise RuntimeError(f"WAYMARK_SOURCES: each source needs name, kind and url: {item!r}")
        name, kind = str(item["name"]), str(item["kind"])
        if not NAME.match(name) or name == "waymark":
            raise RuntimeError(f"WAYMARK_SOURCES: bad source name {name!r} (letters, digits, _.-)")
        if kind not in KINDS:
            raise RuntimeError(f"WAYMARK_SOURCES: source {name!r} kind must be one of {KINDS}")
        if any(f["name"] == name for f in found):
            raise RuntimeError(f"WAYMARK_SOURCES: source {name!r} is listed twice")
        default_schema = "dbos" if kind == "dbos" else "waymark"
        schema = str(item.get("schema") or default_schema)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", schema):
            raise RuntimeError(f"WAYMARK_SOURCES: source {name!r} has a bad schema {schema!r}")
        found.append({"name": name, "kind": kind, "url": str(item["url"]), "schema": schema})
    return found


def default() -> Source:
    return Source("", "waymark", settings.WAYMARK_DATABASE_URL, settings.WAYMARK_SCHEMA)


def listed() -> list[Source]:
    return [Source(**item) for item in getattr(settings, "WAYMARK_SOURCES", [])]


def named(name: str) -> Source:
    """The source called ``name`` ("" or "waymark": the engine's own); SourceError otherwise."""
    if name in ("", "waymark"):
        return default()
    for source in listed():
        if source.name == name:
            _configure(source)
            return source
    raise SourceError(f"no source named {name!r}: the console lists {choices()}")


def choices() -> list[str]:
    return ["waymark", *(s.name for s in listed())]


_current: ContextVar[Source | None] = ContextVar("waymark_source", default=None)


def current() -> Source:
    return _current.get() or default()


def alias() -> str:
    return current().alias


def activate(source: Source) -> Any:
    return _current.set(source)


def deactivate(token: Any) -> None:
    _current.reset(token)


def _configure(source: Source) -> None:
    """Give the source a database alias the first time it is used."""
    if source.alias in connections.settings:
        return
    config = database_config(source.url)  # the same URL rules as DATABASE_URL
    if config["ENGINE"] == "django.db.backends.postgresql":
        config["OPTIONS"] = {"options": f"-c search_path={source.schema}"}
    connections.settings[source.alias] = {
        **connections.settings["default"],
        **config,
        "TEST": {},
        "ATOMIC_REQUESTS": False,
        "CONN_MAX_AGE": 0,
        "WAYMARK_SOURCE": source,
    }


def dbos_version(cursor: Any, vendor: str, schema: str) -> int | None:
    table = "dbos_migrations" if vendor == "sqlite" else f'"{schema}".dbos_migrations'
    try:
        cursor.execute(f"SELECT max(version) FROM {table}")
    except Exception:  # the table is missing: not a DBOS system database
        return None
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else None


def prepare_dbos(connection: Any) -> None:
    """On a new connection to a DBOS source: check its schema version, make the temp views."""
    source: Source = connection.settings_dict["WAYMARK_SOURCE"]
    vendor = connection.vendor
    with connection.cursor() as cur:
        version = dbos_version(cur, vendor, source.schema)
        if version not in DBOS_VERSIONS:
            raise SourceError(
                f"source {source.name!r}: "
                + (
                    f"no DBOS system tables in schema {source.schema!r} (no dbos_migrations)"
                    if version is None
                    else f"DBOS schema version {version} is not one this console reads "
                    f"({DBOS_VERSIONS.start}-{DBOS_VERSIONS.stop - 1}); upgrade the console "
                    "or point the source at a supported DBOS database"
                )
            )
        dialect = "sqlite" if vendor == "sqlite" else "postgres"
        sql = (VIEWS / f"dbos_views_{dialect}.sql").read_text()
        prefix = "main." if vendor == "sqlite" else f'"{source.schema}".'
        for statement in filter(None, (s.strip() for s in sql.split(";\n"))):
            cur.execute(statement.replace("{dbos}", prefix))


def on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    source = connection.settings_dict.get("WAYMARK_SOURCE")
    if source is not None and source.is_dbos:
        prepare_dbos(connection)
