"""Kombu's Redis transport, with a fix for a worker that dies when Redis goes away.

With Celery 5.7.0 and kombu 5.7.0 (the latest of both), a worker whose broker connection drops
while it is waiting for work and still holds an unacknowledged task (``task_acks_late``) exits
with "Unrecoverable error: AttributeError('NoneType' object has no attribute 'hostname')".
Celery first collects the broken connection, which clears the transport's ``client``, then closes
it; that close tries to give the unacknowledged messages back to Redis, builds a connection pool
from ``transport.client``, finds None, and the AttributeError escapes every handler. Nothing then
consumes the queue until someone restarts the worker.

The channel here keeps the connection it was opened on, so that closing it reaches for Redis:
with Redis still away that fails with a connection error, which kombu ignores as it should, and
the worker goes on to reconnect. The messages stay in Redis's unacknowledged set and come back at
the visibility timeout (the outbox does not wait for them: its claims expire on their own).

``install()`` (called by ``config.celery``, so by every process that loads the settings) makes
this the transport of ``redis://`` and ``rediss://`` URLs, wherever a broker URL is set, with
everything else about those schemes as kombu has it. ``tests/notifications/test_redis_outage.py``
stops a Redis of its own under a busy worker and shows it goes on; with kombu's own transport the
same test sees the worker exit.
"""

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis


class Channel(redis.Channel):
    def __init__(self, connection: Any, *args: Any, **kwargs: Any) -> None:
        self._opened_on = connection.client
        super().__init__(connection, *args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            # Only a collected transport has lost it, and only closing uses it then.
            self.connection.client = self._opened_on
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # not in the stubs


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
