"""The memory tier in front of the disk: one load per key, LRU by bytes and count, invalidation by generation."""

import threading
from collections import Counter

import pytest

from cache_app.models import Artifact, CacheEntry, CacheLimits, Tier, TierCounter
from cache_app.selectors import cache_stats, tier_counts
from cache_app.services import limits
from cache_app.services.maintenance import artifact_clear
from cache_app.services.memory import memory_tier
from cache_app.services.serving import artifact_serve
from cache_app.services.stats import counters
from tests.processes import in_threads


class CountingLoader:
    """Stands in for AutoGluon: 'loads' a folder into a list of its file names, counting the loads."""

    def __init__(self, size_bytes: int = 1000):
        self.loads = 0
        self.size_bytes = size_bytes
        self._lock = threading.Lock()

    def __call__(self, path):
        with self._lock:
            self.loads += 1
        return sorted(p.name for p in path.rglob("*.bin")), self.size_bytes


def set_memory_limits(*, max_bytes: int, max_count: int) -> None:
    row = limits.limits_current()
    CacheLimits.objects.filter(pk=row.pk).update(memory_max_bytes=max_bytes, memory_max_count=max_count)
    limits.limits_reset()


def test_origin_then_memory_then_disk_after_a_restart(make_artifact):
    artifact = make_artifact()
    loader = CountingLoader()
    first = artifact_serve(artifact=artifact, loader=loader)
    assert (first.tier, first.from_cache) == (Tier.ORIGIN, False)
    assert first.fetch_seconds > 0 and first.load_seconds > 0
    second = artifact_serve(artifact=artifact, loader=loader)
    assert (second.tier, second.from_cache) == (Tier.MEMORY, True)
    assert second.obj is first.obj and loader.loads == 1

    memory_tier().clear()  # what a process restart does to the memory tier
    third = artifact_serve(artifact=artifact, loader=loader)
    assert (third.tier, third.from_cache) == (Tier.DISK, True) and loader.loads == 2


@pytest.mark.django_db(transaction=True)
def test_many_threads_cause_one_load(make_artifact):
    artifact = make_artifact()
    loader = CountingLoader()
    tiers = in_threads(16, lambda: artifact_serve(artifact=Artifact.objects.get(pk=artifact.pk), loader=loader).tier)
    assert loader.loads == 1
    assert Counter(tiers) == {Tier.ORIGIN: 1, Tier.MEMORY: 15}


def test_memory_is_bounded_by_count_least_recent_first(make_artifact):
    set_memory_limits(max_bytes=10**9, max_count=2)
    a, b, c = (make_artifact() for _ in range(3))
    loader = CountingLoader()
    for artifact in (a, b, a, c):
        artifact_serve(artifact=artifact, loader=loader)
    resident = {r["artifact_id"] for r in memory_tier().snapshot()}
    assert resident == {a.pk, c.pk}


def test_memory_is_bounded_by_bytes(make_artifact):
    set_memory_limits(max_bytes=2500, max_count=10)
    a, b, c = (make_artifact() for _ in range(3))
    loader = CountingLoader(size_bytes=1000)
    for artifact in (a, b, c):
        artifact_serve(artifact=artifact, loader=loader)
    assert [r["artifact_id"] for r in memory_tier().snapshot()] == [b.pk, c.pk]


def test_an_object_bigger_than_memory_is_served_but_not_kept(make_artifact):
    set_memory_limits(max_bytes=500, max_count=10)
    artifact = make_artifact()
    served = artifact_serve(artifact=artifact, loader=CountingLoader(size_bytes=1000))
    assert served.obj and memory_tier().snapshot() == []


def test_clear_drops_the_memory_copy_and_the_next_request_refetches(make_artifact):
    artifact = make_artifact()
    loader = CountingLoader()
    held = artifact_serve(artifact=artifact, loader=loader).obj
    artifact_clear(artifact=artifact)
    again = artifact_serve(artifact=artifact, loader=loader)
    assert again.tier == Tier.ORIGIN and loader.loads == 2
    assert held  # an in-flight request keeps the object it holds


def test_another_process_clearing_is_seen_through_the_generation(make_artifact):
    artifact = make_artifact()
    loader = CountingLoader()
    artifact_serve(artifact=artifact, loader=loader)
    # Another node bumps the generation in the shared database; this process learns it from the row.
    Artifact.objects.filter(pk=artifact.pk).update(generation=artifact.generation + 1)
    fresh = Artifact.objects.get(pk=artifact.pk)
    assert artifact_serve(artifact=fresh, loader=loader).tier == Tier.ORIGIN
    assert [r["artifact_id"] for r in memory_tier().snapshot()] == [artifact.pk]


def test_memory_hits_write_nothing_until_the_flush_and_lose_no_count(make_artifact, django_assert_num_queries):
    artifact = make_artifact()
    loader = CountingLoader()
    artifact_serve(artifact=artifact, loader=loader)
    counters().flush()
    with django_assert_num_queries(0):
        for _ in range(50):
            artifact_serve(artifact=artifact, loader=loader)
    counters().flush()
    counts = tier_counts(node="test-node")
    assert counts[Tier.MEMORY]["hits"] == 50 and counts[Tier.MEMORY]["misses"] == 1
    entry = CacheEntry.objects.get(artifact=artifact, tier=Tier.DISK)
    assert entry.hit_count == 50  # the disk entry's LRU position moved with its memory hits


@pytest.mark.django_db(transaction=True)
def test_concurrent_counting_loses_nothing():
    def count():
        for _ in range(500):
            counters().record(Tier.MEMORY, hits=1)

    in_threads(8, count)
    counters().flush()
    assert sum(TierCounter.objects.filter(tier=Tier.MEMORY).values_list("hits", flat=True)) == 4000


def test_stats_answer_in_the_seed_shape_with_tiers(make_artifact):
    artifact = make_artifact()
    artifact_serve(artifact=artifact, loader=CountingLoader())
    artifact_serve(artifact=artifact, loader=CountingLoader())
    counters().flush()
    stats = cache_stats()
    assert stats["total_models"] == 1
    assert stats["total_size_mb"] == round(artifact.unpacked_bytes / 1024 / 1024, 2)
    assert stats["tiers"]["memory"]["hits"] == 1 and stats["tiers"]["memory"]["hit_rate"] == 0.5
    assert stats["tiers"]["origin"]["hits"] == 1
    assert stats["node"] == "test-node"


def test_a_late_invalidation_message_spares_a_newer_copy(make_artifact):
    from cache_app.services.fleet import invalidation_handle

    artifact = make_artifact()
    loader = CountingLoader()
    artifact_serve(artifact=artifact, loader=loader)
    assert invalidation_handle(f"{artifact.pk}:{artifact.generation}") == 0  # same generation: kept
    assert invalidation_handle(f"{artifact.pk}:{artifact.generation + 1}".encode()) == 1
    assert memory_tier().snapshot() == []
    assert invalidation_handle("garbage") == 0
