"""The Celery app (Django convention): ``celery -A console worker``.

Broker from WAYMARK_CELERY_BROKER_URL (redis://127.0.0.1:6379/0 or amqp://...), with the settings
of console/celery_broker.py (for Redis, kombu's transport with its restart crash fixed). Each worker
process builds the deployment's engine (console/worker.py) and runs the workflows handed to it.

Before it consumes anything, the worker's main process checks its configuration
(console/celery_checks.py): WAYMARK_DATABASE_URL set, WAYMARK_APP loads, the database
answers. Any failure stops the worker with a clear error instead of acknowledging tasks it
cannot run. It then consumes only the queue of the application version it runs
(``waymark.<version>``), so a rolling deploy never hands a workflow to the wrong code.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from console import celery_broker
from engine import fleet
from engine.contrib import celery as waymark_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("waymark")
app.conf.update(
    celery_broker.settings(os.environ.get("WAYMARK_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
)
app.conf.task_default_queue = "waymark.unversioned"  # nothing is sent there; never "celery"


def _engine(*, executor_id: str, claim_queues: bool):  # type: ignore[no-untyped-def]
    import django

    django.setup()
    from console import worker
    from engine import metrics

    try:  # WAYMARK_METRICS_PORT: this process serves its metrics (see README, worker metrics)
        metrics.serve_from_env()
    except OSError:  # a prefork sibling serves the port (the aggregate, in multiprocess mode)
        pass
    return worker.build_engine(executor_id=executor_id, claim_queues=claim_queues)


run_workflow = waymark_celery.register_task(app, _engine)


@signals.celeryd_after_setup.connect
def _check_and_select_queue(sender: str, instance: Any, **_: Any) -> None:
    """Refuse to start when misconfigured; consume only this version's queue."""
    from console import celery_checks

    version = celery_checks.check_or_exit(sender)
    os.environ[fleet.NODE_NAME_ENV] = sender  # inherited by the processes forked next
    queues = instance.app.amqp.queues
    queues.select_add(waymark_celery.queue_for(version))
    for name in list(queues.consume_from or ()):
        if name != waymark_celery.queue_for(version):
            queues.deselect(name)
