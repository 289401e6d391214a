"""Redis, where configured: the fleet's locks and invalidation messages. Optional by design.

Every caller treats ``None`` (no ``REDIS_URL``, or Redis unreachable) as "single node": correctness then
rests on the database generation and file locks, and only fleet-wide single flight and instant
invalidation are lost.
"""

import logging
import os
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "model-cache:invalidate"
# After a failure, leave Redis alone for this long so a down Redis does not add a timeout to every request.
RETRY_AFTER_SECONDS = 10.0

_lock = threading.Lock()
_client = None
_client_url = None
_failed_at: float | None = None
_last_error = ""


def redis_client():
    global _client, _client_url
    url = settings.REDIS_URL
    if not url:
        return None
    with _lock:
        if _failed_at is not None and time.monotonic() - _failed_at < RETRY_AFTER_SECONDS:
            return None
        if _client is None or _client_url != url:
            import redis

            _client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0)
            _client_url = url
        client = _client
    return client


def redis_failed(error: Exception) -> None:
    global _failed_at, _last_error
    with _lock:
        _failed_at = time.monotonic()
        _last_error = str(error)
    logger.warning("Redis unreachable, continuing as a single node: %s", error)


def redis_status() -> dict:
    """For stats: whether Redis is configured and answers."""
    if not settings.REDIS_URL:
        return {"configured": False, "reachable": None}
    client = redis_client()
    if client is None:
        return {"configured": True, "reachable": False, "error": _last_error}
    import redis

    try:
        client.ping()
    except redis.RedisError as error:
        redis_failed(error)
        return {"configured": True, "reachable": False, "error": str(error)}
    return {"configured": True, "reachable": True}


def invalidation_publish(*, artifact_id: int, generation: int) -> None:
    client = redis_client()
    if client is None:
        return
    import redis

    try:
        client.publish(INVALIDATION_CHANNEL, f"{artifact_id}:{generation}")
    except redis.RedisError as error:
        redis_failed(error)


# --- Invalidation subscriber ------------------------------------------------------------------------------
# One daemon thread per process (per pid: threads do not survive fork) listening on INVALIDATION_CHANNEL.
# A message "artifact_id:generation" drops that artifact from this process's memory tier at once. Missing a
# message (Redis down, reconnecting) is safe: the generation in the database changes every cache key, so
# the next request misses anyway; the subscriber only frees the memory sooner.

_subscriber_guard = threading.Lock()
_subscriber_pid: int | None = None
_subscriber_stop: threading.Event | None = None
_subscriber_ready = threading.Event()
SUBSCRIBER_RETRY_SECONDS = 2.0


def invalidation_subscriber_start() -> bool:
    """Start this process's subscriber if Redis is configured and it is not running yet. Idempotent."""
    global _subscriber_pid, _subscriber_stop, _subscriber_ready
    url = settings.REDIS_URL
    if not url:
        return False
    with _subscriber_guard:
        if _subscriber_pid == os.getpid():
            return True
        _subscriber_pid = os.getpid()
        _subscriber_stop = threading.Event()
        _subscriber_ready = threading.Event()
        thread = threading.Thread(
            target=_subscribe_forever,
            args=(url, _subscriber_stop, _subscriber_ready),
            name="cache-invalidation-subscriber",
            daemon=True,
        )
        thread.start()
        return True


def invalidation_subscriber_wait(timeout: float = 5.0) -> bool:
    """True once the subscriber is listening (for tests and start-up checks)."""
    return _subscriber_ready.wait(timeout)


def invalidation_handle(message: bytes | str) -> int:
    """Apply one invalidation message; returns how many memory residents were dropped."""
    from cache_app.services.memory import memory_tier

    text = message.decode() if isinstance(message, bytes) else str(message)
    artifact_id, _, generation = text.partition(":")
    try:
        artifact_id, generation = int(artifact_id), int(generation)
    except ValueError:
        logger.warning("ignoring malformed invalidation message %r", text)
        return 0
    # A late message must not drop a copy this process already reloaded under the new generation.
    dropped = memory_tier().discard_artifact(artifact_id, before_generation=generation)
    if dropped:
        logger.info("invalidation: dropped artifact %s from memory (%s)", artifact_id, text)
    return dropped


def _subscribe_forever(url: str, stop: threading.Event, ready: threading.Event) -> None:
    import redis

    while not stop.is_set():
        pubsub = None
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_keepalive=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(INVALIDATION_CHANNEL)
            ready.set()
            while not stop.is_set():
                # A timeout, not a blocking listen(), so the loop notices ``stop`` and dead connections.
                message = pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    invalidation_handle(message["data"])
        except redis.RedisError as error:
            ready.clear()
            logger.warning("invalidation subscriber lost Redis (%s); retrying in %ss", error, SUBSCRIBER_RETRY_SECONDS)
            stop.wait(SUBSCRIBER_RETRY_SECONDS)
        except Exception:  # noqa: BLE001 - a bug in one message must not end the listener
            logger.exception("invalidation subscriber failed; restarting")
            stop.wait(SUBSCRIBER_RETRY_SECONDS)
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass


def invalidation_subscriber_stop() -> None:
    global _subscriber_pid, _subscriber_stop
    with _subscriber_guard:
        if _subscriber_stop is not None:
            _subscriber_stop.set()
        _subscriber_pid = None
        _subscriber_stop = None


def fleet_reset() -> None:
    global _client, _client_url, _failed_at, _last_error
    invalidation_subscriber_stop()
    with _lock:
        _client = None
        _client_url = None
        _failed_at = None
        _last_error = ""
