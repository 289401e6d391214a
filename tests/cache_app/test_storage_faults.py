"""Faults of this node's own disk are 503s with a code and a reason, never a 500: a real full file system,
a real read-only one, and a complete copy missing its manifest."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cache_app.models import Artifact, CacheEntry, FetchRecord, Tier
from cache_app.services import archives, runtime
from cache_app.services.errors import CacheStorageFault
from cache_app.services.eviction import TEMP_FOLDER
from cache_app.services.fetch import MANIFEST_NAME, artifact_fetch
from cache_app.services.integrity import file_sha256
from cache_app.services.serving import artifact_serve
from cache_app.services.tiers import tier_for
from cache_app.services.tiers.base import Location
from tests.cache_app.conftest import remount_read_only
from tests.cache_app.test_integrity import HOUSE

pytestmark = pytest.mark.django_db


def zeros_artifact(tmp_path, settings, *, format: str, megabytes: int, declared_size: bool = True) -> Artifact:
    """An archive that unpacks to ``megabytes`` of zeros, published with an understated unpacked size (as an
    artifact published before sizes were recorded has): the room check cannot foresee what it needs."""
    source = tmp_path / f"zeros-{format}"
    source.mkdir()
    with open(source / "weights.bin", "wb") as out:
        out.truncate(megabytes * 1024 * 1024)
    archive = tmp_path / f"zeros.{format}"
    archives.archive_create(source_dir=source, dest_path=archive, format=format)
    location = Location.parse(settings.MODEL_ORIGIN_URI).child(f"zeros/{archive.name}")
    tier_for(location).upload(location, archive)
    settings.MODEL_EXTRACT_MAX_RATIO = 1_000_000.0  # zeros compress far beyond the default cap
    return Artifact.objects.create(
        source_uri=location.uri,
        sha256=file_sha256(archive),
        size_bytes=archive.stat().st_size if declared_size else None,
        unpacked_bytes=1,
        format=format,
    )


@pytest.mark.parametrize("format", ["zip", "tar.gz"])
def test_disk_full_during_extraction_is_a_coded_fault_and_leaves_nothing(small_volume, settings, tmp_path, format):
    settings.MODEL_CACHE_DIR = small_volume(96)
    artifact = zeros_artifact(tmp_path, settings, format=format, megabytes=120)
    with pytest.raises(CacheStorageFault) as raised:
        artifact_fetch(artifact=artifact)
    assert raised.value.code == "cache_disk_full"
    assert "No space left on device" in str(raised.value)
    assert list((Path(settings.MODEL_CACHE_DIR) / TEMP_FOLDER).iterdir()) == []  # the space is given back
    assert not CacheEntry.objects.filter(artifact=artifact, tier=Tier.DISK, state=CacheEntry.State.READY).exists()


def test_disk_full_during_the_download_is_a_coded_fault(small_volume, settings, tmp_path):
    settings.MODEL_CACHE_DIR = small_volume(96)
    artifact = zeros_artifact(tmp_path, settings, format="tar", megabytes=120, declared_size=False)
    with pytest.raises(CacheStorageFault) as raised:
        artifact_fetch(artifact=artifact)
    assert raised.value.code == "cache_disk_full"
    assert list((Path(settings.MODEL_CACHE_DIR) / TEMP_FOLDER).iterdir()) == []


def test_a_read_only_cache_serves_what_it_holds_and_refuses_the_rest(small_volume, make_artifact, settings):
    settings.MODEL_CACHE_DIR = volume = small_volume(256)
    held, new = make_artifact(), make_artifact()

    def loader(path):
        return sorted(p.name for p in path.rglob("*.bin")), 10

    artifact_serve(artifact=held, loader=loader)
    remount_read_only(volume)
    runtime.reset()  # a restart onto the read-only folder

    assert artifact_serve(artifact=held, loader=loader).tier == Tier.DISK
    with pytest.raises(CacheStorageFault) as raised:
        artifact_fetch(artifact=new)
    assert raised.value.code == "cache_read_only"


def test_the_api_answers_503_with_the_code_for_a_read_only_cache(small_volume, house_version, settings, django_user_model):
    settings.MODEL_CACHE_DIR = volume = small_volume(64)
    remount_read_only(volume)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=django_user_model.objects.create_user('u')).key}")
    response = client.post(f"/api/models/{house_version.model_id}/predict", {"features": HOUSE}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "cache_read_only"
    assert "Read-only file system" in response.json()["detail"]


def test_reconcile_quarantines_a_complete_folder_missing_its_manifest(make_artifact, settings):
    artifact = make_artifact()
    folder = artifact_fetch(artifact=artifact).path.parent
    (folder / MANIFEST_NAME).unlink()
    CacheEntry.objects.filter(artifact=artifact).delete()

    out = StringIO()
    call_command("cache_reconcile", stdout=out)
    assert "1 quarantined" in out.getvalue()
    assert not folder.exists()
    assert [p.name.split(".")[0] for p in (Path(settings.MODEL_CACHE_DIR) / ".quarantine").iterdir()] == [folder.name]
    assert artifact_fetch(artifact=artifact).tier == Tier.ORIGIN


def test_a_disk_copy_that_cannot_be_looked_at_is_a_coded_fault_not_a_miss(make_artifact, settings):
    """A marker that fails to stat for any reason but absence (here a real symlink loop where the entry's folder
    should be) is a 503 fault at the first look: no download into a folder that fails the same way, and
    nothing the cache did not create is touched."""
    artifact = make_artifact()
    folder = Path(settings.MODEL_CACHE_DIR) / artifact.cache_key
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(folder.name)
    with pytest.raises(CacheStorageFault) as raised:
        artifact_fetch(artifact=artifact)
    assert raised.value.code == "cache_storage_error"
    assert "Too many levels of symbolic links" in str(raised.value)
    assert not FetchRecord.objects.filter(artifact=artifact).exists()
    assert folder.is_symlink()
