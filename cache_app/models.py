"""What the cache knows: published archives, their copies on each node and tier, and counters.

``cache_app`` knows nothing of AutoGluon: an artifact is an archive of files with a checksum.
"""

from django.db import models
from django.utils import timezone


class Artifact(models.Model):
    class Format(models.TextChoices):
        ZIP = "zip", "zip"
        TAR_GZ = "tar.gz", "tar.gz"
        TAR = "tar", "tar"

    source_uri = models.CharField(max_length=1024, help_text="Where it was published (the origin).")
    # What people call it, given by whoever registers the artifact ("house-prices v3"): the cache shows it
    # without knowing what an artifact holds.
    label = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(
        max_length=64, blank=True, help_text="Expected SHA-256 of the archive; blank until first computed."
    )
    size_bytes = models.BigIntegerField(null=True, blank=True, help_text="Size of the archive.")
    unpacked_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Size once extracted: what the disk tier must make room for."
    )
    format = models.CharField(max_length=8, choices=Format.choices)
    # Bumped by a clear: every copy made under an older generation is stale, on every node.
    generation = models.PositiveIntegerField(default=1)
    pinned = models.BooleanField(default=False, help_text="Never evicted from disk; warmed on start if enabled.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("manage_cache", "Can clear, warm, verify and pin cached models")]

    def __str__(self) -> str:
        return self.label or f"artifact {self.pk} ({self.source_uri.rsplit('/', 1)[-1]})"

    @property
    def cache_key(self) -> str:
        """Names this artifact's copies: changes with the content and with every clear."""
        return f"{self.pk}-{(self.sha256 or 'unverified')[:16]}-g{self.generation}"


class Tier(models.TextChoices):
    MEMORY = "memory", "memory"
    DISK = "disk", "disk"
    SHARED = "shared", "shared"
    ORIGIN = "origin", "origin"


class CacheEntry(models.Model):
    class State(models.TextChoices):
        FETCHING = "fetching", "fetching"
        READY = "ready", "ready"
        CORRUPT = "corrupt", "corrupt"
        EVICTED = "evicted", "evicted"

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="entries")
    node = models.CharField(max_length=255, help_text="Node name; the shared tier uses '*' (fleet-wide).")
    tier = models.CharField(max_length=8, choices=Tier.choices)
    location = models.CharField(max_length=1024)
    generation = models.PositiveIntegerField(default=1)
    size_bytes = models.BigIntegerField(default=0)
    state = models.CharField(max_length=8, choices=State.choices, default=State.FETCHING)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_accessed_at = models.DateTimeField(default=timezone.now)
    hit_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "cache entries"
        constraints = [
            models.UniqueConstraint(fields=["artifact", "node", "tier"], name="one_entry_per_artifact_node_tier")
        ]
        # The eviction query: this node's ready disk entries, least recently used first.
        indexes = [models.Index(fields=["node", "tier", "state", "last_accessed_at"], name="entry_lru")]

    def __str__(self) -> str:
        return f"{self.artifact_id}@{self.node}/{self.tier} ({self.state})"


class TierCounter(models.Model):
    """Hits, misses and transfers per node and tier over one time bucket (a minute)."""

    node = models.CharField(max_length=255)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    bucket_start = models.DateTimeField()
    hits = models.PositiveBigIntegerField(default=0)
    misses = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    bytes_transferred = models.PositiveBigIntegerField(default=0)
    fetch_seconds = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "tier", "bucket_start"], name="one_counter_per_bucket")
        ]
        indexes = [models.Index(fields=["bucket_start"], name="counter_bucket")]

    def __str__(self) -> str:
        return f"{self.node}/{self.tier} @ {self.bucket_start:%Y-%m-%d %H:%M}"


class FetchRecord(models.Model):
    """One fetch that went past the disk tier: which tier served it, how big, how long, or why it failed."""

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="fetches")
    node = models.CharField(max_length=255)
    tier = models.CharField(max_length=8, choices=Tier.choices, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"fetch of {self.artifact_id} from {self.tier or '-'} on {self.node}"


class CacheLimits(models.Model):
    """Runtime limits, one row, edited in the admin; each node re-reads them within seconds."""

    disk_max_bytes = models.BigIntegerField()
    memory_max_bytes = models.BigIntegerField()
    memory_max_count = models.PositiveIntegerField()
    hit_rate_warning = models.FloatField(help_text="The dashboard warns under this hit rate (0-1).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "cache limits"

    def __str__(self) -> str:
        return "cache limits"
