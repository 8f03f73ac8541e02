"""What an executor is, for the console's view of the fleet (executors.role, node_name).

- ``worker``: claims queued workflows and runs them (``runworker``, a plain engine);
- ``dispatcher``: claims them and hands them to Celery (``runworker --dispatch celery``);
- ``celery``: runs only what it is handed (a Celery worker process, ``claim_queues=False``).

A Celery worker's main process puts its node name (``name@host``, from ``-n``) in
WAYMARK_NODE_NAME before it forks its processes, so each one's executor row names its node.
"""

from __future__ import annotations

import os

NODE_NAME_ENV = "WAYMARK_NODE_NAME"


def role(*, dispatching: bool, claim_queues: bool) -> str:
    if dispatching:
        return "dispatcher"
    return "worker" if claim_queues else "celery"


def node_name() -> str | None:
    return os.environ.get(NODE_NAME_ENV) or None
