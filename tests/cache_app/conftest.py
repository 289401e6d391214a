"""Synthetic artifacts for the engine's tests: folders of random bytes, archived and published to an origin.

The engine never looks inside a model, so these exercise it as real models would, at any size, in
milliseconds. Prediction tests use real AutoGluon predictors (tests/models.py).
"""

import os
import subprocess
from pathlib import Path

import pytest

from cache_app.models import Artifact
from cache_app.services import archives
from cache_app.services.integrity import file_sha256
from cache_app.services.tiers import tier_for
from cache_app.services.tiers.base import Location


def write_tree(root: Path, *, total_bytes: int, files: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    per_file = max(1, total_bytes // files)
    for index in range(files):
        folder = root / "models" if index % 2 else root
        (folder / f"part-{index}.bin").write_bytes(os.urandom(per_file))
    return root


@pytest.fixture
def make_artifact(db, tmp_path, settings):
    """``make_artifact(size=..., origin=URI, format=..., expected_sha=True)`` -> a published Artifact."""
    counter = iter(range(1, 10_000))

    def make(*, size: int = 256 * 1024, origin: str | None = None, format: str = "tar.gz", expected_sha=True):
        number = next(counter)
        source = write_tree(tmp_path / f"source-{number}", total_bytes=size)
        archive = tmp_path / f"archive-{number}.{format}"
        archives.archive_create(source_dir=source, dest_path=archive, format=format)
        sha256 = file_sha256(archive)
        location = Location.parse(origin or settings.MODEL_ORIGIN_URI).child(f"model-{number}/{sha256}.{format}")
        tier_for(location).upload(location, archive)
        artifact = Artifact.objects.create(
            source_uri=location.uri,
            sha256=sha256 if expected_sha else "",
            size_bytes=archive.stat().st_size,
            unpacked_bytes=sum(p.stat().st_size for p in source.rglob("*") if p.is_file()),
            format=format,
        )
        artifact.source_dir = source
        return artifact

    return make


@pytest.fixture
def small_volume(tmp_path):
    """``small_volume(megabytes)`` -> a real file system of that size (tmpfs), unmounted at the end; it can
    be made read-only with ``remount_read_only(path)``. Needs root, as mounting does."""
    mounted: list[Path] = []

    def mount(megabytes: int) -> Path:
        point = tmp_path / f"volume-{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small volume ({done.stderr.strip()}); these tests need root")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
