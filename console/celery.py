"""The Celery app (Django convention): ``celery -A console worker``.

Broker from WAYMARK_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0). Each worker process
builds the deployment's engine (console/worker.py) and runs the workflows handed to it.
"""

from __future__ import annotations

import os

from celery import Celery

from engine.contrib import celery as waymark_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("waymark")
app.conf.broker_url = os.environ.get("WAYMARK_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
app.conf.task_acks_late = True  # a task lost with its worker is redelivered...
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1  # ...and a worker holds no more than it runs
app.conf.broker_connection_retry_on_startup = True


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
