"""Remote tiers by URI scheme: ``tier_for(Location.parse("s3://bucket/key"))``.

Each backend lives in its own module, imported on first use so a node without the Azure SDK can still
serve ``s3://`` and ``file://``. Instances (and their SDK clients) are cached per scheme and container.
"""

import importlib
import threading

from django.core.exceptions import ImproperlyConfigured

from .base import Location, ObjectMissing, RemoteTier, TierError

__all__ = ["Location", "ObjectMissing", "RemoteTier", "TierError", "tier_for", "tiers_reset"]

BACKENDS = {
    "file": "cache_app.services.tiers.filesystem.FileSystemTier",
    "s3": "cache_app.services.tiers.s3.S3Tier",
    "azure": "cache_app.services.tiers.azure.AzureTier",
    "http": "cache_app.services.tiers.https.HttpsTier",
    "https": "cache_app.services.tiers.https.HttpsTier",
}

_instances: dict[tuple[str, str], RemoteTier] = {}
_lock = threading.Lock()


def tier_for(location: Location) -> RemoteTier:
    """The tier serving ``location``, one shared instance per (scheme, container)."""
    key = (location.scheme, location.container)
    with _lock:
        tier = _instances.get(key)
        if tier is None:
            try:
                dotted = BACKENDS[location.scheme]
            except KeyError:
                raise ImproperlyConfigured(
                    f"no storage tier for scheme {location.scheme!r}: use one of {', '.join(sorted(BACKENDS))}"
                ) from None
            module_name, class_name = dotted.rsplit(".", 1)
            tier_class = getattr(importlib.import_module(module_name), class_name)
            tier = _instances[key] = tier_class(container=location.container)
        return tier


def tiers_reset() -> None:
    """Forget every instance and its clients, so the next use reads settings afresh (tests, reloads)."""
    with _lock:
        _instances.clear()
