"""A Celery worker's start-up checks: loud and final when misconfigured.

A worker that cannot run the deployment's workflows must not take tasks: acknowledged in a
millisecond while running nothing, they would look delivered and be lost from view. So the main
process, before it consumes anything, checks that WAYMARK_DATABASE_URL is set (no silent SQLite
fallback), that WAYMARK_APP loads, and that the database answers; on failure it logs one clear
line (``action=celery.misconfigured``) and exits with status 78 (EX_CONFIG).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

log = logging.getLogger("waymark.celery")

EX_CONFIG = 78


def _log_with_actions() -> None:
    from console import worker

    root = logging.getLogger("waymark")
    if not any(getattr(h, "waymark", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(worker.ActionFormatter())
        handler.waymark = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False


def application_version() -> str:
    """Load the application the way a worker process will, on a throwaway SQLite engine
    (no connection is opened before Celery forks its processes); return its version."""
    from django.conf import settings

    from console import worker
    from engine import Engine

    with tempfile.TemporaryDirectory(prefix="waymark-probe-") as folder:
        probe = Engine(settings.WAYMARK_APP_NAME, f"sqlite:///{folder}/probe.sqlite3")
        worker.load_app(settings.WAYMARK_APP)(probe)
        worker.register_console_workflows(probe)
        return probe.application_version


def check_database() -> None:
    """Reach the system database once (and create or upgrade its tables), then disconnect."""
    from django.conf import settings

    from engine import store

    st = store.connect(settings.WAYMARK_DATABASE_URL, settings.WAYMARK_SCHEMA, 5.0)
    try:
        st.ready()
    finally:
        st.close()


def check() -> str:
    """Raise ``SystemExit``-worthy ``RuntimeError`` on misconfiguration; the version otherwise."""
    import django

    if not os.environ.get("WAYMARK_DATABASE_URL"):
        raise RuntimeError(
            "WAYMARK_DATABASE_URL is not set: a Celery worker must use the dispatcher's system "
            "database (the same URL, schema, WAYMARK_APP and WAYMARK_APP_NAME)"
        )
    django.setup()
    from django.conf import settings

    try:
        version = application_version()
    except Exception as exc:
        raise RuntimeError(
            f"WAYMARK_APP {settings.WAYMARK_APP!r} does not load: {type(exc).__name__}: {exc} "
            f"(working directory {os.getcwd()}; is the application's package importable?)"
        ) from exc
    try:
        check_database()
    except Exception as exc:
        raise RuntimeError(f"the system database is unreachable: {exc}") from exc
    return version


def check_or_exit(nodename: str) -> str:
    _log_with_actions()
    try:
        version = check()
    except RuntimeError as exc:
        log.critical(
            "Celery worker %s refuses to start: %s",
            nodename,
            exc,
            extra={"action": "celery.misconfigured"},
        )
        sys.stderr.write(f"waymark: Celery worker {nodename} refuses to start: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(EX_CONFIG)  # not an Exception: Celery does not swallow it
    log.info(
        "Celery worker %s serves application version %s",
        nodename,
        version,
        extra={"action": "celery.ready", "version": version},
    )
    return version
