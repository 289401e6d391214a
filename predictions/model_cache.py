"""Cache operations on models: clear, warm and verify a model (or every model) in the cache.

The cache (``cache_app``) knows artifacts; a model is its versions' artifacts. These services are the one
place that maps a model to them, and the API (``predictions.cache_apis``) and the management commands
(``cache_clear``, ``cache_warm``, ``cache_verify``) call them. Each records who did what
(``cache_app.services.audit``), as the admin's artifact actions do; commands run without a user and are
in the command's own output instead.

"Warm" means the same on every surface (``cache_app.services.serving.artifact_warm``): fetched onto this
node's disk, verified, and loaded into this process's memory.
"""

from dataclasses import dataclass, field

from cache_app.models import Artifact
from cache_app.services import maintenance
from cache_app.services.audit import cache_action_record, verified_summary
from cache_app.services.maintenance import Cleared, Verified
from cache_app.services.serving import Served, artifact_warm
from predictions.models import MLModel, ModelVersion


@dataclass
class ModelCleared:
    artifacts: list[Cleared] = field(default_factory=list)

    @property
    def disk_bytes_freed(self) -> int:
        return sum(c.disk_bytes_freed for c in self.artifacts)

    @property
    def shared_deleted(self) -> bool:
        return any(c.shared_deleted for c in self.artifacts)


def model_cache_clear(*, model: MLModel | None, include_shared: bool, user=None, via: str) -> ModelCleared:
    """Clear every version of ``model`` (None: every artifact) on every tier but the origin."""
    action = "clear, shared tier included" if include_shared else "clear"
    if model is None:
        cleared = maintenance.artifact_clear_all(include_shared=include_shared)
        cache_action_record(user=user, action=action, message=f"{via}: {len(cleared)} artifacts cleared")
        return ModelCleared(artifacts=cleared)
    result = ModelCleared()
    for version in model_versions(model):
        cleared = maintenance.artifact_clear(artifact=version.artifact, include_shared=include_shared)
        cache_action_record(user=user, action=action, message=f"{via}: now generation {cleared.generation}",
                            obj=version.artifact, label=str(version))
        result.artifacts.append(cleared)
    return result


def model_cache_warm(*, version: ModelVersion, user=None, via: str) -> Served:
    """Fetch ``version`` onto this node's disk and load it into this process's memory (``artifact_warm``)."""
    try:
        served = artifact_warm(artifact=version.artifact)
    except Exception as error:
        cache_action_record(user=user, action="warm", message=f"{via}: failed: {error}", obj=version.artifact,
                            label=str(version))
        raise
    cache_action_record(user=user, action="warm", message=f"{via}: served from {served.tier}", obj=version.artifact,
                        label=str(version))
    return served


def model_cache_verify(*, versions=None, user=None, via: str) -> list[tuple[str, Verified]]:
    """Re-hash this node's disk copies of ``versions`` (None: every artifact) against their manifests.

    A damaged copy is invalidated everywhere, so the next use on any process or node fetches a good one.
    """
    if versions is None:
        targets = [(str(artifact), artifact) for artifact in Artifact.objects.order_by("pk")]
    else:
        targets = [(str(version), version.artifact) for version in versions]
    results = []
    for label, artifact in targets:
        verified = maintenance.artifact_verify(artifact=artifact)
        cache_action_record(user=user, action="verify", message=f"{via}: {verified_summary(verified)}",
                            obj=artifact, label=label)
        results.append((label, verified))
    return results


def model_versions(model: MLModel):
    return model.versions.select_related("artifact", "model").order_by("number")
