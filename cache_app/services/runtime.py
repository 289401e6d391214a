"""What each process of the portal keeps and runs, owned in one place, with an explicit start and stop.

The parts: the memory tier, the hit/miss counter buffer, single-flight locks, the limits, the tier clients,
fetched entry ids, Redis and its invalidation listener, the cache folder's sweeper, and whatever other apps
register when they start (``predictions``: cached lookups, the prediction log buffer, the promotion poller).

- ``start(serving=...)``: in each process after it forks, from the server's hooks (gunicorn ``post_fork``:
  serving; a Celery pool child's ``worker_process_init``: not serving). Starts the background threads.
  Processes with no such hook (management commands, tests) run without them: nothing else starts threads.
- ``stop()``: on the way out (gunicorn ``worker_exit``, Celery ``worker_process_shutdown``): buffered
  counters and logs are written, threads stopped.
- ``reset()``: tests and settings changes start afresh.
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    name: str
    start: Callable[[], object] | None = None
    stop: Callable[[], object] | None = None
    reset: Callable[[], object] | None = None
    serving_only: bool = False  # started only in processes that answer requests


class Runtime:
    def __init__(self):
        self._parts: dict[str, Part] = {}
        self._lock = threading.Lock()
        self._started_pid: int | None = None

    def register(self, part: Part) -> None:
        """Add (or replace, by name) a part; an app registers its own when it is ready."""
        with self._lock:
            self._parts[part.name] = part

    def start(self, *, serving: bool) -> None:
        with self._lock:
            if self._started_pid == os.getpid():
                return
            self._started_pid = os.getpid()
            parts = list(self._parts.values())
        for part in parts:
            if part.start is not None and (serving or not part.serving_only):
                part.start()

    def stop(self) -> None:
        with self._lock:
            parts = list(reversed(self._parts.values()))
            self._started_pid = None
        for part in parts:
            if part.stop is None:
                continue
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - one part failing to stop must not keep the others from it
                logger.exception("stopping %s failed", part.name)

    def reset(self) -> None:
        with self._lock:
            parts = list(self._parts.values())
            self._started_pid = None
        for part in parts:
            if part.reset is not None:
                part.reset()


def _engine_parts() -> list[Part]:
    from cache_app.services import fetch, fleet, housekeeping, limits, locks, memory, stats, tiers

    return [
        Part("memory tier", reset=lambda: memory.memory_tier().clear()),
        Part("counters", stop=lambda: stats.counters().flush(), reset=lambda: stats.counters().discard()),
        Part("single flight", reset=locks.locks_reset),
        Part("limits", reset=limits.limits_reset),
        Part("redis", start=fleet.invalidation_subscriber_start, stop=fleet.invalidation_subscriber_stop,
             reset=fleet.fleet_reset),
        Part("tiers", reset=tiers.tiers_reset),
        Part("disk entry ids", reset=fetch.entry_ids_reset),
        Part("sweeper", start=housekeeping.sweeper_start, stop=housekeeping.housekeeping_reset,
             reset=housekeeping.housekeeping_reset),
    ]


RUNTIME = Runtime()
_engine_registered = False


def _engine_ensure() -> None:
    # The engine's parts come first, whoever registers first: stop runs in reverse, so they stop last.
    global _engine_registered
    if not _engine_registered:
        _engine_registered = True
        for part in _engine_parts():
            RUNTIME.register(part)


def register(part: Part) -> None:
    _engine_ensure()
    RUNTIME.register(part)


def start(*, serving: bool) -> None:
    _engine_ensure()
    RUNTIME.start(serving=serving)


def stop() -> None:
    RUNTIME.stop()


def reset() -> None:
    _engine_ensure()
    RUNTIME.reset()
