"""In-process caches for what every request looks up: its token's user, its model and its version.

Each lookup would otherwise be a query per request (a token, a model with its current version and artifact
joined), as much work as the prediction itself on a small model. Entries live in the process for
``PREDICT_LOOKUP_CACHE_SECONDS`` and are then read again; how changes reach them:

- In the process that makes the change, at once: deleting a token, saving a user, a model or a version drops
  the entries that depend on it (the receivers at the bottom).
- In every other worker and node, within the TTL. A TTL rather than messages of our own because a node with
  several workers and no Redis has no channel at all, and a TTL bounds staleness there too; one query per key
  per TTL per worker costs nothing.
- A clear (generation bump) reaches a version at once wherever the memory tier hears of it (this process, and
  every process when Redis carries the invalidation): ``version_fresh`` re-reads a version whose artifact is
  no longer resident under the cached generation, so a cleared model is never served from a stale key.

When the database cannot be reached, an entry past its TTL keeps serving for up to
``PREDICT_LOOKUP_STALE_SECONDS``, and the database is left alone for ``DB_RETRY_SECONDS`` after each failure
so an outage does not add a connection attempt to every request. With the prediction log buffered
(``predictions.prediction_logs``), a model in memory keeps answering through a database outage.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError
from django.db.models.signals import post_delete, post_save
from rest_framework.authtoken.models import Token

from cache_app.services.errors import ArtifactUnavailable

logger = logging.getLogger(__name__)

# What an unreachable database raises (a connection refused, a file that cannot be opened, a dropped link);
# anything else (a missing row, a bug) is not an outage and is never hidden by a stale entry.
DATABASE_DOWN = (OperationalError, InterfaceError)
DB_RETRY_SECONDS = 1.0
MAX_ENTRIES = 10_000


class DatabaseUnavailable(ArtifactUnavailable):
    """The database cannot be reached and nothing cached can answer in its place."""

    code = "database_unavailable"


@dataclass
class _Entry:
    value: Any
    loaded_at: float


_db_down_until = 0.0
_db_lock = threading.Lock()


def _database_failed() -> None:
    global _db_down_until
    with _db_lock:
        _db_down_until = time.monotonic() + DB_RETRY_SECONDS


def database_resting() -> bool:
    """True shortly after a lookup found the database down: serve what is cached without trying again."""
    return time.monotonic() < _db_down_until


class LookupCache:
    """``key -> value`` read through ``load`` at most once per TTL; stale entries stand in while the DB is down."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, _Entry] = OrderedDict()
        self._refreshing: set = set()

    def get(self, key, load: Callable[[], Any]):
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            if entry is None or now - entry.loaded_at < settings.PREDICT_LOOKUP_CACHE_SECONDS:
                refreshed_elsewhere = False
            else:
                # One thread re-reads an expired entry; the others answer with it meanwhile, instead of every
                # busy thread of the worker querying (and connecting) at the same moment.
                refreshed_elsewhere = key in self._refreshing
                self._refreshing.add(key)
        if entry is not None and now - entry.loaded_at < settings.PREDICT_LOOKUP_CACHE_SECONDS:
            return entry.value
        usable = entry is not None and now - entry.loaded_at < settings.PREDICT_LOOKUP_STALE_SECONDS
        if usable and refreshed_elsewhere:
            return entry.value
        try:
            if usable and database_resting():
                return entry.value
            return self._load(key, load, entry, usable)
        finally:
            if entry is not None and not refreshed_elsewhere:
                with self._lock:
                    self._refreshing.discard(key)

    def _load(self, key, load: Callable[[], Any], entry: _Entry | None, usable: bool):
        try:
            value = load()
        except DATABASE_DOWN as error:
            _database_failed()
            if usable:
                logger.warning("database unreachable, serving the cached %s %r: %s", self.name, key, error)
                return entry.value
            raise DatabaseUnavailable(f"the database cannot be reached: {error}") from error
        except Exception:
            self.discard(key)  # gone or refused now (a deleted token, an unknown model): forget it
            raise
        self.put(key, value)
        return value

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = _Entry(value, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def discard(self, key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k, e in self._entries.items() if predicate(e.value)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# token key -> (user, token); model reference (id or name, as sent) -> model with current version and
# artifact; (model id, number) -> version with artifact and model.
tokens = LookupCache("token")
models = LookupCache("model")
versions = LookupCache("version")


def lookups_reset() -> None:
    """Forget everything (between tests, whose databases reuse primary keys)."""
    global _db_down_until
    for cache in (tokens, models, versions):
        cache.clear()
    _db_down_until = 0.0


def version_fresh(version, *, reload: Callable[[], Any]):
    """``version``, re-read when its artifact is not resident in memory under the cached generation.

    A clear drops the resident at once (here, and everywhere Redis carries it), so a miss may mean the cached
    generation is stale; a real cold start pays one query beside a load that costs seconds.
    """
    from cache_app.services.memory import memory_tier

    if memory_tier().get(version.artifact.cache_key) is not None or database_resting():
        return version
    try:
        fresh = reload()
    except DATABASE_DOWN:
        _database_failed()
        return version  # the fetch will say what is wrong, or a copy on disk may still serve
    if fresh.artifact.generation != version.artifact.generation or fresh.model.current_version_id != (
        version.model.current_version_id
    ):
        model_forget(version.model_id)
    return fresh


def model_forget(model_id: int) -> None:
    models.discard_where(lambda model: model.pk == model_id)
    versions.discard_where(lambda version: version.model_id == model_id)


def _token_forget(sender, instance, **kwargs) -> None:
    tokens.discard(instance.key)


def _user_forget(sender, instance, **kwargs) -> None:
    # A deactivated user, or one whose staff rights changed, must not keep a cached identity here.
    tokens.discard_where(lambda pair: pair[0].pk == instance.pk)


def _model_forget(sender, instance, **kwargs) -> None:
    model_forget(instance.pk)


def _version_forget(sender, instance, **kwargs) -> None:
    model_forget(instance.model_id)


def receivers_connect() -> None:
    from predictions.models import MLModel, ModelVersion

    user_model = get_user_model()
    for signal in (post_save, post_delete):
        signal.connect(_token_forget, sender=Token, dispatch_uid="lookups-token")
        signal.connect(_user_forget, sender=user_model, dispatch_uid="lookups-user")
        signal.connect(_model_forget, sender=MLModel, dispatch_uid="lookups-model")
        signal.connect(_version_forget, sender=ModelVersion, dispatch_uid="lookups-version")
