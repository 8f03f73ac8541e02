"""How a Waymark Celery app uses its broker: the settings, and for Redis kombu's transport
with kombu 5.7.0's restore-after-restart crash fixed.

The crash (every worker exits after a Redis restart: "Restoring N unacknowledged message(s)",
then "Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")"):
1. Redis goes away while the worker's channel waits in BRPOP and holds unacknowledged tasks
   (``acks_late``: the ones running). The loss is noticed on another socket first, typically
   the pub/sub one of remote control or gossip, so the BRPOP reply is still pending.
2. Celery collects the broken connection: kombu closes the channel, whose ``close`` first reads
   the pending BRPOP reply; that read raises ConnectionError, so ``close`` stops before it
   closes the channel or restores its unacknowledged tasks, and the error is swallowed.
3. kombu then detaches the transport from its connection (``transport.client = None``).
4. Celery closes the connection again; the still-open channel now restores its tasks, which
   builds a new Redis pool from ``transport.client.hostname``: AttributeError. Nothing catches
   an AttributeError there, so the consumer and the worker die.

The fix is in step 2: a dead BRPOP connection does not stop ``close``, so the channel closes
(and tries its restore) while the transport is still attached; later closes are no-ops. No
newer kombu fixes it (5.7.0 is the latest release). Tasks a failed restore leaves behind are
not lost work: their workflows stay with the dispatcher, which sends them again (RESEND_AFTER).

kombu's extension point for a transport is a subclass (``Transport.Channel``), hence the
inheritance here, against the house rule: the override only reads the channel's own state.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

# kombu's own names for a transport given as a URL scheme; only these get the fixed class.
FIXED_SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def close(self) -> None:
        if self._in_poll:  # a BRPOP reply is pending: read it, or find its connection dead
            try:
                self._brpop_read()
            except kombu_redis.Empty:
                pass
            except self.connection_errors:
                pass  # dead: nothing to read (``_brpop_read`` cleared ``_in_poll``)
        super().close()


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"


def transport_for(broker_url: str) -> str | None:
    """The ``broker_transport`` setting for ``broker_url``: this module's class for a Redis
    URL (kombu then parses the URL exactly as for ``redis://``), None (kombu's choice from
    the scheme) for any other broker."""
    scheme = broker_url.partition("://")[0].lower()
    return TRANSPORT if scheme in FIXED_SCHEMES else None


def settings(broker_url: str) -> dict[str, Any]:
    """The Celery settings of every Waymark Celery app (``app.conf.update(...)``)."""
    return {
        "broker_url": broker_url,
        "broker_transport": transport_for(broker_url),
        "task_acks_late": True,  # a task lost with its worker is redelivered...
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # ...and a worker holds no more than it runs
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,  # a broker restart never ends the worker
        # Explicit: a running workflow keeps running when the broker connection drops (its
        # task is redelivered after the reconnect; the duplicate finds the workflow taken and
        # runs nothing).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
