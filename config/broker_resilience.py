"""Keep Celery workers alive when the Redis broker goes away for a moment.

kombu's Redis transport (kombu 5.7, redis-py 8) can crash a worker on a broker blip: when
the consumer closes its lost connection, a channel that still holds unacknowledged
messages (acks_late) tries to restore or ack them through a transport that the
connection has already detached (``transport.client is None``).  ``_connparams`` then
raises ``AttributeError('NoneType' object has no attribute 'hostname')``, which is neither
a connection nor a channel error, so Celery's ``ignore_errors`` lets it through and the
worker stops with "Unrecoverable error".  Reproduced here by stopping and restarting a
private redis-server while tasks are in flight (tests/faults/test_broker_outage.py);
reported in kombu's tracker in a similar shape (celery/kombu#582).

The workaround raises a connection error instead, which every caller on that path already
handles: the consumer logs it and reconnects, the message stays in Redis's unacked index
and is restored by the visibility timeout.
"""

from __future__ import annotations

import functools


def install() -> None:
    try:
        from kombu.transport import redis as kombu_redis
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # no Redis client installed: the embedded broker is in use
        return
    channel = kombu_redis.Channel
    if getattr(channel._connparams, "_switchback_patched", False):
        return
    original = channel._connparams

    @functools.wraps(original)
    def _connparams(self, *args, **kwargs):
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection is closed (reconnecting)")
        return original(self, *args, **kwargs)

    _connparams._switchback_patched = True
    channel._connparams = _connparams
