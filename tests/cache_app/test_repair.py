"""A damaged copy on the shared tier (moto, a real S3 server) is abandoned cleanly in every archive format,
the model comes from the origin, and the shared copy is written again."""

from pathlib import Path

import boto3
import pytest

from cache_app.models import CacheEntry, Tier
from cache_app.services import archives
from cache_app.services.eviction import TEMP_FOLDER
from cache_app.services.fetch import artifact_fetch, shared_location
from cache_app.services.integrity import file_sha256
from cache_app.services.maintenance import artifact_clear
from tests.cache_app.conftest import write_tree
from tests.cache_app.test_fetch import same_tree


@pytest.fixture
def shared_s3(s3_bucket, moto_server, settings):
    settings.MODEL_SHARED_URI = f"s3://{s3_bucket}/shared"
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return client, s3_bucket


def damaged_copy(good: bytes, *, damage: str, format: str, tmp_path: Path) -> bytes:
    if damage == "flipped":
        # Same size, bytes changed in the middle: a tar still parses to the end, so its streamed extraction
        # completes before the checksum says no.
        data = bytearray(good)
        for offset in range(len(data) // 2, len(data) // 2 + 64):
            data[offset] ^= 0xFF
        return bytes(data)
    # A well-formed archive of the same format holding another model: only the checksum tells.
    other = tmp_path / f"other.{format}"
    archives.archive_create(source_dir=write_tree(tmp_path / "other", total_bytes=len(good)), dest_path=other, format=format)
    return other.read_bytes()


@pytest.mark.parametrize("format", ["zip", "tar", "tar.gz"])
@pytest.mark.parametrize("damage", ["flipped", "another_archive"])
def test_a_damaged_shared_copy_is_repaired_from_the_origin(make_artifact, shared_s3, format, damage, settings, tmp_path):
    client, bucket = shared_s3
    artifact = make_artifact(format=format, size=512 * 1024)
    assert artifact_fetch(artifact=artifact).tier == Tier.ORIGIN  # writes the shared copy through
    key = shared_location(artifact).key
    good = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=damaged_copy(good, damage=damage, format=format, tmp_path=tmp_path))
    artifact_clear(artifact=artifact)  # this node's disk copy goes: the next fetch reads the shared tier

    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, artifact.source_dir)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == good  # the shared copy is repaired
    shared_entry = CacheEntry.objects.get(artifact=artifact, tier=Tier.SHARED)
    assert shared_entry.state == CacheEntry.State.READY
    assert list((Path(settings.MODEL_CACHE_DIR) / TEMP_FOLDER).iterdir()) == []  # no staging left behind

    artifact_clear(artifact=artifact)
    assert artifact_fetch(artifact=artifact).tier == Tier.SHARED  # and other nodes read it from there again


def test_a_rejected_streamed_attempt_does_not_block_the_next_tier(make_artifact, shared_s3, settings, tmp_path):
    """The origin's attempt gets its own staging folder even when the shared attempt's extraction ran to
    the end of a complete (but wrong) tar."""
    client, bucket = shared_s3
    artifact = make_artifact(format="tar", size=256 * 1024)
    wrong = tmp_path / "wrong.tar"
    archives.archive_create(source_dir=write_tree(tmp_path / "wrong", total_bytes=1024), dest_path=wrong, format="tar")
    client.put_object(Bucket=bucket, Key=shared_location(artifact).key, Body=wrong.read_bytes())
    assert file_sha256(wrong) != artifact.sha256

    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, artifact.source_dir)
