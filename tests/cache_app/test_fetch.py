"""The disk -> shared -> origin path of the engine, against real servers (moto, Azurite, a fault proxy)."""

import json
import time
from pathlib import Path

import pytest

from cache_app.models import Artifact, CacheEntry, FetchRecord, Tier
from cache_app.services import archives, runtime
from cache_app.services.fetch import (
    COMPLETE_MARKER,
    MANIFEST_NAME,
    FetchFailed,
    artifact_fetch,
    shared_location,
)
from cache_app.services.integrity import HashingWriter, file_sha256
from cache_app.services.maintenance import artifact_clear, artifact_verify
from cache_app.services.stats import counters
from cache_app.services.tiers import tier_for
from cache_app.services.tiers.base import Location


def same_tree(extracted: Path, source: Path) -> bool:
    return archives.manifest_build(root=extracted) == archives.manifest_build(root=source)


def test_cold_fetch_comes_from_origin_and_the_next_from_disk(make_artifact):
    artifact = make_artifact()
    first = artifact_fetch(artifact=artifact)
    assert first.tier == Tier.ORIGIN
    assert same_tree(first.path, artifact.source_dir)
    assert (first.path.parent / COMPLETE_MARKER).exists()
    entry = CacheEntry.objects.get(artifact=artifact, node="test-node", tier=Tier.DISK)
    assert entry.state == CacheEntry.State.READY and entry.verified_at is not None
    assert entry.size_bytes == artifact.unpacked_bytes

    second = artifact_fetch(artifact=artifact)
    assert second.tier == Tier.DISK and second.path == first.path
    counters().flush()
    entry.refresh_from_db()
    assert entry.hit_count == 1 and entry.last_accessed_at > entry.verified_at
    assert FetchRecord.objects.filter(artifact=artifact, tier=Tier.ORIGIN, error="").count() == 1


def test_disk_copies_are_read_only_and_carry_a_manifest(make_artifact):
    fetched = artifact_fetch(artifact=make_artifact())
    manifest = json.loads((fetched.path.parent / MANIFEST_NAME).read_text())
    assert archives.manifest_verify(root=fetched.path, manifest=manifest) == []
    some_file = next(p for p in fetched.path.rglob("*") if p.is_file())
    assert some_file.stat().st_mode & 0o222 == 0


@pytest.mark.parametrize("format", ["zip", "tar.gz", "tar"])
def test_every_archive_format_round_trips(make_artifact, format):
    artifact = make_artifact(format=format)
    assert same_tree(artifact_fetch(artifact=artifact).path, artifact.source_dir)


def test_fetch_from_an_s3_origin(make_artifact, s3_bucket):
    artifact = make_artifact(origin=f"s3://{s3_bucket}/origin", size=3 * 1024 * 1024)
    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, artifact.source_dir)


def test_fetch_from_an_azure_origin(make_artifact, azure_container):
    artifact = make_artifact(origin=f"azure://{azure_container}/origin", size=3 * 1024 * 1024)
    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, artifact.source_dir)


def test_origin_writes_through_to_shared_which_then_serves_other_nodes(make_artifact, s3_bucket, settings, tmp_path):
    settings.MODEL_SHARED_URI = f"s3://{s3_bucket}/shared"
    artifact = make_artifact()
    assert artifact_fetch(artifact=artifact).tier == Tier.ORIGIN
    location = shared_location(artifact)
    assert tier_for(location).size(location) == artifact.size_bytes
    shared = CacheEntry.objects.get(artifact=artifact, tier=Tier.SHARED)
    assert shared.state == CacheEntry.State.READY and shared.node == "*"

    settings.NODE_NAME, settings.MODEL_CACHE_DIR = "node-b", tmp_path / "cache-b"
    runtime.reset()
    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.SHARED and same_tree(fetched.path, artifact.source_dir)


def test_shared_tier_on_azure(make_artifact, azure_container, settings, tmp_path):
    settings.MODEL_SHARED_URI = f"azure://{azure_container}/shared"
    artifact = make_artifact()
    artifact_fetch(artifact=artifact)
    settings.NODE_NAME, settings.MODEL_CACHE_DIR = "node-b", tmp_path / "cache-b"
    runtime.reset()
    assert artifact_fetch(artifact=artifact).tier == Tier.SHARED


def test_a_corrupt_shared_copy_is_repaired_from_origin(make_artifact, s3_bucket, settings, tmp_path):
    settings.MODEL_SHARED_URI = f"s3://{s3_bucket}/shared"
    artifact = make_artifact()
    location = shared_location(artifact)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not the model at all")
    tier_for(location).upload(location, bad)

    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, artifact.source_dir)
    failed = FetchRecord.objects.get(artifact=artifact, tier=Tier.SHARED)
    assert "checksum mismatch" in failed.error
    # The write-through replaced the bad copy with the verified one.
    with HashingWriter(tmp_path / "repaired") as writer:
        tier_for(location).download(location, writer, deadline=time.monotonic() + 30)
        assert writer.hexdigest() == artifact.sha256
    assert CacheEntry.objects.get(artifact=artifact, tier=Tier.SHARED).state == CacheEntry.State.READY


def test_a_corrupt_origin_is_refused_with_a_clear_error(make_artifact, settings):
    artifact = make_artifact()
    origin_file = Path(Location.parse(artifact.source_uri).key)
    origin_file.write_bytes(origin_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(FetchFailed, match="origin: checksum mismatch"):
        artifact_fetch(artifact=artifact)
    assert not CacheEntry.objects.filter(artifact=artifact, state=CacheEntry.State.READY).exists()
    assert list((Path(settings.MODEL_CACHE_DIR) / ".tmp").iterdir()) == []


@pytest.mark.parametrize("cloud", ["s3", "azure"])
def test_a_streamed_fetch_records_the_digests_a_re_read_finds(make_artifact, cloud, request):
    container = request.getfixturevalue("s3_bucket" if cloud == "s3" else "azure_container")
    artifact = make_artifact(origin=f"{cloud}://{container}/origin", size=3 * 1024 * 1024)
    fetched = artifact_fetch(artifact=artifact)
    # Hashed as the extraction wrote them, never read back: the manifest must equal a fresh read of the files.
    recorded = json.loads((fetched.path.parent / MANIFEST_NAME).read_text())
    assert recorded == archives.manifest_build(root=fetched.path)
    assert same_tree(fetched.path, artifact.source_dir)


@pytest.mark.parametrize("cloud", ["s3", "azure"])
def test_a_streamed_archive_that_fails_its_checksum_never_lands(make_artifact, cloud, request, settings, tmp_path):
    container = request.getfixturevalue("s3_bucket" if cloud == "s3" else "azure_container")
    artifact = make_artifact(origin=f"{cloud}://{container}/origin", size=3 * 1024 * 1024)
    # A valid archive of other files under the same name: it extracts to the end while it streams in, and
    # only its checksum tells it apart.
    other = make_artifact(size=3 * 1024 * 1024)
    impostor = tmp_path / "impostor.tar.gz"
    impostor.write_bytes(Path(Location.parse(other.source_uri).key).read_bytes())
    location = Location.parse(artifact.source_uri)
    tier_for(location).upload(location, impostor)

    with pytest.raises(FetchFailed, match="origin: checksum mismatch"):
        artifact_fetch(artifact=artifact)
    assert not CacheEntry.objects.filter(artifact=artifact, state=CacheEntry.State.READY).exists()
    assert not any(Path(settings.MODEL_CACHE_DIR).glob(f"{artifact.pk}-*"))
    assert list((Path(settings.MODEL_CACHE_DIR) / ".tmp").iterdir()) == []


def test_a_missing_origin_says_where_it_looked(make_artifact):
    artifact = make_artifact()
    Path(Location.parse(artifact.source_uri).key).unlink()
    with pytest.raises(FetchFailed, match="origin: no copy at file://"):
        artifact_fetch(artifact=artifact)


def test_without_an_expected_checksum_one_is_computed_and_recorded(make_artifact, caplog):
    artifact = make_artifact(expected_sha=False)
    fetched = artifact_fetch(artifact=artifact)
    artifact.refresh_from_db()
    assert artifact.sha256 == file_sha256(Location.parse(artifact.source_uri).key)
    assert "no expected SHA-256" in caplog.text
    assert fetched.path.parent.name == artifact.cache_key


def test_a_hostile_archive_is_refused_and_nothing_lands(make_artifact, settings, tmp_path):
    import io
    import tarfile

    from cache_app.services.archives import UnsafeArchive

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    origin = Path(settings.MODEL_ORIGIN_URI.removeprefix("file://")) / "hostile.tar.gz"
    origin.parent.mkdir(parents=True, exist_ok=True)
    origin.write_bytes(payload.getvalue())
    artifact = Artifact.objects.create(
        source_uri=origin.as_uri(), sha256=file_sha256(origin), size_bytes=origin.stat().st_size, format="tar.gz"
    )
    with pytest.raises(UnsafeArchive, match=r"\.\."):
        artifact_fetch(artifact=artifact)
    cache = Path(settings.MODEL_CACHE_DIR)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []
    assert list((cache / ".tmp").iterdir()) == []


def test_clear_is_obeyed_by_another_node_on_its_next_access(make_artifact, settings, tmp_path):
    artifact = make_artifact()
    node_a = ("node-a", tmp_path / "cache-a")
    node_b = ("node-b", tmp_path / "cache-b")

    def on(node):
        settings.NODE_NAME, settings.MODEL_CACHE_DIR = node
        runtime.reset()

    on(node_a)
    artifact_fetch(artifact=artifact)
    on(node_b)
    old_b = artifact_fetch(artifact=Artifact.objects.get(pk=artifact.pk)).path
    assert artifact_fetch(artifact=Artifact.objects.get(pk=artifact.pk)).tier == Tier.DISK

    on(node_a)
    cleared = artifact_clear(artifact=Artifact.objects.get(pk=artifact.pk))
    assert cleared.generation == 2 and cleared.disk_bytes_freed == artifact.unpacked_bytes
    assert not any(node_a[1].glob(f"{artifact.pk}-*"))

    on(node_b)
    again = artifact_fetch(artifact=Artifact.objects.get(pk=artifact.pk))
    assert again.tier == Tier.ORIGIN
    assert not old_b.exists() and again.path.exists()


def test_verify_finds_a_tampered_disk_copy_and_removes_it(make_artifact):
    artifact = make_artifact()
    fetched = artifact_fetch(artifact=artifact)
    victim = next(p for p in fetched.path.rglob("*.bin"))
    victim.chmod(0o644)
    victim.write_bytes(b"tampered")
    verified = artifact_verify(artifact=artifact)
    assert not verified.ok and any(victim.name in problem for problem in verified.problems)
    assert CacheEntry.objects.get(artifact=artifact, tier=Tier.DISK).state == CacheEntry.State.CORRUPT
    assert artifact_fetch(artifact=artifact).tier == Tier.ORIGIN
    assert artifact_verify(artifact=artifact).ok


def test_other_processes_find_the_row_of_a_fresh_copy_without_a_query(make_artifact, django_assert_num_queries):
    from cache_app.services import fetch

    artifact = make_artifact()
    fetched = artifact_fetch(artifact=artifact)
    fetch.entry_ids_reset()  # as in another process, which never saw the row
    with django_assert_num_queries(0):
        assert fetch._landed(artifact)
    assert fetch._entry_ids[artifact.cache_key] == fetched.entry_id
