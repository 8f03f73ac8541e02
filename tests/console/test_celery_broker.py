"""The broker settings every Waymark Celery app uses (console/celery_broker.py)."""

from __future__ import annotations

import pytest

from console import celery_broker


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/0", celery_broker.TRANSPORT),
        ("REDISS://broker:6380/1", celery_broker.TRANSPORT),
        ("amqp://guest:guest@127.0.0.1:5672//", None),
        ("sentinel://127.0.0.1:26379", None),
    ],
)
def test_only_redis_urls_get_the_fixed_transport(url, transport) -> None:
    settings = celery_broker.settings(url)
    assert settings["broker_transport"] == transport
    assert settings["broker_url"] == url


def test_the_console_app_uses_them() -> None:
    from console.celery import app

    assert app.conf.broker_transport == celery_broker.transport_for(app.conf.broker_url)
    assert app.conf.task_acks_late and app.conf.broker_connection_max_retries is None
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_the_fixed_transport_is_kombus_redis_transport() -> None:
    from kombu import Connection
    from kombu.transport import redis

    with Connection("redis://127.0.0.1:1/0", transport=celery_broker.TRANSPORT) as conn:
        assert isinstance(conn.transport, redis.Transport)
        assert conn.transport.Channel is celery_broker.Channel
        assert (conn.transport.driver_type, conn.port) == ("redis", 1)
