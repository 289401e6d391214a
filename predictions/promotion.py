"""Moving an alias or the current version without a cold start: warm the target everywhere, then switch.

A promotion is a ``Promotion`` row in the database, which every node shares. Every serving process (each
gunicorn worker, on every node) registers as a ``ServingProcess`` and polls for promotions that are warming;
it loads the target through the cache tiers (its node's disk, then its own memory) and answers with a
``PromotionWarm`` row. The promoting process switches the pointer once every live process has answered "ok",
and aborts with the first failure's reason (or when one stays silent past ``PROMOTION_WARM_TIMEOUT_SECONDS``).

Why the database and not Redis pub/sub, as the cache's invalidations use: a node without Redis runs several
gunicorn workers with no channel between them, and the promoter must *count* the answers; the database is the
one thing every process of every node already shares. A poll is one indexed read every
``PROMOTION_POLL_SECONDS``.

After a switch, each process's poller also drops its cached lookups of that model, so no worker keeps
answering with the old version until its lookup cache expires.
"""

import logging
import os
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from cache_app.services.errors import ArtifactUnavailable
from predictions import lookups
from predictions.models import MLModel, ModelAlias, ModelVersion, Promotion, PromotionWarm, ServingProcess

logger = logging.getLogger(__name__)


class PromotionFailed(ArtifactUnavailable):
    """The target could not be warmed everywhere: nothing was switched."""

    code = "promotion_failed"


def promotion_request(
    *, model: MLModel, version: ModelVersion, alias_name: str = "", user=None, rollback: bool = False
) -> Promotion:
    """Record a move of ``alias_name`` (blank: the current version) to ``version``; ``promotion_run`` does it."""
    if version.model_id != model.pk:
        raise ValueError(f"{version} is not a version of {model.name}")
    if alias_name:
        current = ModelAlias.objects.filter(model=model, name=alias_name).values_list("version_id", flat=True).first()
    else:
        current = model.current_version_id
    return Promotion.objects.create(
        model=model,
        alias_name=alias_name,
        from_version_id=current,
        to_version=version,
        rollback=rollback,
        requested_by=user if user is not None and user.is_authenticated else None,
    )


def promotion_run(*, promotion: Promotion) -> Promotion:
    """Warm the target here and in every live serving process, then switch; or fail with the reason.

    Returns the promotion as finished (``switched`` or ``failed``); never raises for a failed warm-up.
    """
    version = ModelVersion.objects.select_related("artifact", "model").get(pk=promotion.to_version_id)
    deadline = time.monotonic() + settings.PROMOTION_WARM_TIMEOUT_SECONDS
    # This process first: it fetches to this node's disk, which the other workers here then find.
    warm = _warm_here(promotion, version)
    if not warm.ok:
        return _finish(promotion, failed=f"{warm.node}:{warm.pid}: {warm.error}")
    while True:
        missing, failed = _progress(promotion)
        if failed is not None:
            return _finish(promotion, failed=f"{failed.node}:{failed.pid}: {failed.error}")
        if not missing:
            return _switch(promotion)
        if time.monotonic() > deadline:
            names = ", ".join(f"{p.node}:{p.pid}" for p in missing)
            return _finish(
                promotion,
                failed=f"no answer from {names} within {settings.PROMOTION_WARM_TIMEOUT_SECONDS:g} s",
            )
        time.sleep(settings.PROMOTION_POLL_SECONDS)


def promotion_start(*, promotion: Promotion) -> None:
    """Run the promotion in a background thread once the request's transaction has committed (the admin)."""

    def run():
        try:
            promotion_run(promotion=promotion)
        except Exception as error:  # noqa: BLE001 - a bug must not leave the promotion "warming" forever
            logger.exception("promotion %s failed", promotion.pk)
            _finish(promotion, failed=f"{type(error).__name__}: {error}")
        finally:
            close_old_connections()

    transaction.on_commit(lambda: threading.Thread(target=run, name=f"promotion-{promotion.pk}", daemon=True).start())


def promotion_progress(*, promotion: Promotion) -> dict:
    """What the admin shows: each live process and whether it has the target yet."""
    warms = {(w.node, w.pid): w for w in promotion.warms.all()}
    processes = [(p.node, p.pid) for p in _live_processes()]
    rows = []
    for key in sorted(set(processes) | set(warms)):
        warm = warms.get(key)
        rows.append(
            {
                "process": f"{key[0]}:{key[1]}",
                "state": "waiting" if warm is None else ("ok" if warm.ok else "failed"),
                "served_from": warm.served_from if warm else "",
                "seconds": round(warm.seconds, 3) if warm else None,
                "error": warm.error if warm else "",
            }
        )
    return {"done": sum(1 for r in rows if r["state"] == "ok"), "total": len(rows), "processes": rows}


def _warm_here(promotion: Promotion, version: ModelVersion) -> PromotionWarm:
    from predictions.services import predictor_serve

    began = time.monotonic()
    served_from, error = "", ""
    try:
        served_from = predictor_serve(version=version).tier
    except ArtifactUnavailable as unavailable:
        error = f"{unavailable.code}: {unavailable}"
    except Exception as unexpected:  # noqa: BLE001 - reported as the reason, the switch does not happen
        logger.exception("warming %s for promotion %s", version, promotion.pk)
        error = f"{type(unexpected).__name__}: {unexpected}"
    warm, _ = PromotionWarm.objects.get_or_create(
        promotion=promotion,
        node=settings.NODE_NAME,
        pid=os.getpid(),
        defaults={"ok": not error, "served_from": served_from, "error": error[:2000],
                  "seconds": time.monotonic() - began},
    )
    return warm


def _live_processes() -> list[ServingProcess]:
    alive_since = timezone.now() - timedelta(seconds=settings.PROMOTION_PROCESS_STALE_SECONDS)
    return list(ServingProcess.objects.filter(seen_at__gte=alive_since))


def _progress(promotion: Promotion) -> tuple[list[ServingProcess], PromotionWarm | None]:
    """(live processes that have not answered yet, the first failed answer or None)."""
    warms = list(promotion.warms.all())
    failed = next((w for w in warms if not w.ok), None)
    answered = {(w.node, w.pid) for w in warms}
    return [p for p in _live_processes() if (p.node, p.pid) not in answered], failed


def _switch(promotion: Promotion) -> Promotion:
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=promotion.model_id)
        if promotion.alias_name:
            alias = ModelAlias.objects.filter(model=model, name=promotion.alias_name).first()
            previous = alias.version_id if alias else None
            ModelAlias.objects.update_or_create(
                model=model,
                name=promotion.alias_name,
                defaults={"version_id": promotion.to_version_id, "updated_by_id": promotion.requested_by_id,
                          "updated_at": timezone.now()},
            )
        else:
            previous = model.current_version_id
            model.current_version_id = promotion.to_version_id
            model.save(update_fields=["current_version"])
        # What it pointed at when it switched (another move may have happened while this one warmed).
        Promotion.objects.filter(pk=promotion.pk).update(
            status=Promotion.Status.SWITCHED, from_version_id=previous, finished_at=timezone.now()
        )
    _lookups_forget(promotion.model_id)
    logger.info("promotion %s: %s switched", promotion.pk, promotion)
    promotion.refresh_from_db()
    return promotion


def _finish(promotion: Promotion, *, failed: str) -> Promotion:
    Promotion.objects.filter(pk=promotion.pk, status=Promotion.Status.WARMING).update(
        status=Promotion.Status.FAILED, reason=failed[:4000], finished_at=timezone.now()
    )
    logger.warning("promotion %s aborted: %s", promotion.pk, failed)
    promotion.refresh_from_db()
    return promotion


def _lookups_forget(model_id: int) -> None:
    """Drop this process's cached lookups of the model, so its next request reads the new pointer."""
    lookups.model_forget(model_id)


# --- The serving process's side -----------------------------------------------------------------------------

_poller_guard = threading.Lock()
_poller_pid: int | None = None
_poller_stop = threading.Event()


def serving_poller_start() -> bool:
    """Register this process as serving and start its poller thread. Idempotent per process (per pid)."""
    global _poller_pid, _poller_stop
    with _poller_guard:
        if _poller_pid == os.getpid():
            return False
        _poller_pid = os.getpid()
        _poller_stop = threading.Event()
    threading.Thread(target=_poll_forever, args=(_poller_stop,), name="promotion-poller", daemon=True).start()
    return True


def serving_poller_stop() -> None:
    global _poller_pid
    with _poller_guard:
        _poller_stop.set()
        _poller_pid = None


_seen_written: tuple[int, float] | None = None  # (pid, monotonic time) of this process's last heartbeat


def serving_poll_once(*, since) -> None:
    """One round: say this process is alive (a write every third of the staleness window, not every round),
    warm every promotion it has not answered, forget lookups of models switched since ``since``."""
    global _seen_written
    node, pid = settings.NODE_NAME, os.getpid()
    if _seen_written is None or _seen_written[0] != pid or (
        time.monotonic() - _seen_written[1] > settings.PROMOTION_PROCESS_STALE_SECONDS / 3
    ):
        now = timezone.now()
        ServingProcess.objects.update_or_create(node=node, pid=pid, defaults={"seen_at": now})
        # Workers come and go (restarts, max_requests): rows of long-dead ones are only clutter.
        ServingProcess.objects.filter(seen_at__lt=now - timedelta(days=1)).delete()
        _seen_written = (pid, time.monotonic())
    pending = (
        Promotion.objects.filter(status=Promotion.Status.WARMING)
        .exclude(warms__node=node, warms__pid=pid)
        .select_related("to_version__artifact", "to_version__model")
    )
    for promotion in pending:
        _warm_here(promotion, promotion.to_version)
    for model_id in Promotion.objects.filter(status=Promotion.Status.SWITCHED, finished_at__gte=since).values_list(
        "model_id", flat=True
    ):
        _lookups_forget(model_id)


def serving_process_forget() -> None:
    ServingProcess.objects.filter(node=settings.NODE_NAME, pid=os.getpid()).delete()


def _poll_forever(stop: threading.Event) -> None:
    since = timezone.now()
    while not stop.is_set():
        try:
            # The window overlaps by one interval: a switch committed during a round is seen by the next.
            began = timezone.now() - timedelta(seconds=settings.PROMOTION_POLL_SECONDS)
            serving_poll_once(since=since)
            since = began
        except Exception:  # noqa: BLE001 - a database hiccup must not end the poller
            logger.exception("promotion poller round failed")
            # The next round opens a fresh connection. Between good rounds the thread keeps its own: opening
            # one twice a second in every worker is most of what the poller costs.
            close_old_connections()
        stop.wait(settings.PROMOTION_POLL_SECONDS)
    close_old_connections()
