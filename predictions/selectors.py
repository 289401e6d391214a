"""Reads of the registry: which models exist, which version a request means, where each is cached.

Pure reads: what is not there is ``NotFound`` (a 404 on the API and on pages, an error in commands).
"""

from django.conf import settings
from django.db.models import F, Q

from cache_app.models import CacheEntry, Tier
from cache_app.services.fetch import FLEET_NODE
from cache_app.services.memory import memory_tier
from predictions import lookups
from predictions.models import MLModel, ModelVersion

MODEL_ID_MAX = 2**63 - 1  # a BigAutoField


class NotFound(LookupError):
    """No such model, version or alias."""


def model_list():
    return MLModel.objects.select_related("current_version__artifact").order_by("name")


def model_get(*, model_ref: str) -> MLModel:
    """A model by numeric id or by name: existing clients send ids, people type names.

    Kept in process for ``PREDICT_LOOKUP_CACHE_SECONDS`` (``predictions.lookups``): the instance is shared by
    concurrent requests, so callers read it and never change it.
    """
    ref = str(model_ref)
    return lookups.models.get(ref, lambda: _model_read(ref))


def _model_read(ref: str) -> MLModel:
    model_id = _model_id(ref)
    by_ref = Q(name=ref) if model_id is None else Q(name=ref) | Q(pk=model_id)
    # An id wins over a model whose name happens to be the same digits.
    found = sorted(model_list().filter(by_ref), key=lambda m: str(m.pk) != ref)
    if not found:
        raise NotFound(f"no model {ref!r}")
    return found[0]


def _model_id(ref: str) -> int | None:
    """``ref`` as an id: ASCII digits as the API writes ids (no leading zero), within the id column's range.

    ``str.isdigit`` alone takes "²" and digits of other scripts, which ``int`` refuses or reads as another
    model's id; a number past the column's range is an error in the database, not "no such model".
    """
    if not (ref.isascii() and ref.isdigit()) or len(ref) > len(str(MODEL_ID_MAX)) or ref != str(int(ref)):
        return None
    return int(ref) if int(ref) <= MODEL_ID_MAX else None


def version_get(*, model: MLModel, number: int | None = None) -> ModelVersion:
    """The given version, or the model's current one (already loaded with the model: no query).

    A version whose model was cleared meanwhile is re-read (``lookups.version_fresh``), so the memory tier is
    asked for the generation the database names.
    """
    if number is None and model.current_version is not None:
        version = model.current_version
        version.model = model
    else:
        version = lookups.versions.get((model.pk, number), lambda: _version_read(model, number))
    return lookups.version_fresh(version, reload=lambda: _version_read(model, version.number))


def _version_read(model: MLModel, number: int | None) -> ModelVersion:
    version = ModelVersion.objects.select_related("artifact", "model").filter(model=model, number=number).first()
    if version is None:
        raise NotFound(f"model {model.name} has no version {number if number is not None else '(current)'}")
    return version


def cache_tiers_of(*, version: ModelVersion) -> list[str]:
    """Where a version is cached right now, as seen from this node and worker."""
    return cache_tiers_by_version(versions=[version])[version.pk]


def cache_tiers_by_version(*, versions) -> dict[int, list[str]]:
    """Where each version is cached, for a whole list page in one query (memory is this process's own)."""
    versions = [v for v in versions if v is not None]
    resident = {(r["artifact_id"], r["key"]) for r in memory_tier().snapshot()}
    ready = CacheEntry.objects.filter(
        artifact_id__in=[v.artifact_id for v in versions],
        state=CacheEntry.State.READY,
        generation=F("artifact__generation"),
    ).filter(Q(node=settings.NODE_NAME, tier=Tier.DISK) | Q(node=FLEET_NODE, tier=Tier.SHARED))
    remote = set(ready.values_list("artifact_id", "tier"))
    tiers = {}
    for version in versions:
        found = [Tier.MEMORY] if (version.artifact_id, version.artifact.cache_key) in resident else []
        found += [tier for tier in (Tier.DISK, Tier.SHARED) if (version.artifact_id, tier) in remote]
        tiers[version.pk] = found
    return tiers


def alias_version_get(*, model: MLModel, name: str) -> ModelVersion:
    """The version an alias points at (read on every request: a moved alias is seen at once)."""
    from predictions.models import ModelAlias

    alias = ModelAlias.objects.select_related("version__artifact", "version__model").filter(model=model, name=name).first()
    if alias is None:
        raise NotFound(f"model {model.name} has no alias {name!r}")
    return alias.version
