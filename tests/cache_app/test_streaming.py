"""Extraction while the archive downloads: same result and the same refusals as extraction afterwards."""

import io
import os
import random
import tarfile
import threading
from pathlib import Path

import pytest

from cache_app.services.archives import ExtractionLimits, UnsafeArchive, archive_create, archive_extract
from cache_app.services.streaming import StreamedExtraction

LIMITS = ExtractionLimits(max_bytes=64 * 1024**2, max_members=1000, max_ratio=1000.0)


def pieces(data: bytes, *, seed: int = 1) -> list[bytes]:
    """Uneven pieces, as an SDK hands over its ranges."""
    rng = random.Random(seed)
    cut, out = 0, []
    while cut < len(data):
        size = rng.choice([1, 7, 512, 4096, 65_536, 1_000_003])
        out.append(data[cut : cut + size])
        cut += size
    return out


def feed_all(extraction: StreamedExtraction, data: bytes) -> None:
    # In a thread with a join: if feeding ever blocked on an extraction that stopped reading, the test says so
    # instead of hanging.
    feeder = threading.Thread(target=lambda: [extraction.feed(piece) for piece in pieces(data)])
    feeder.start()
    feeder.join(timeout=60)
    assert not feeder.is_alive(), "feeding blocked"


@pytest.fixture
def model_archive(tmp_path: Path):
    def build(format: str) -> Path:
        source = tmp_path / "source"
        for index in range(40):
            (source / f"d{index % 4}").mkdir(parents=True, exist_ok=True)
            (source / f"d{index % 4}" / f"f{index}.bin").write_bytes(os.urandom(index * 3000))
        (source / "predictor.pkl").write_bytes(b"predictor" * 10_000)
        archive = tmp_path / f"model.{format}"
        archive_create(source_dir=source, dest_path=archive, format=format)
        return archive

    return build


@pytest.mark.parametrize("format", ["tar.gz", "tar"])
def test_a_streamed_extraction_writes_what_extraction_afterwards_writes(model_archive, tmp_path, format):
    archive = model_archive(format)
    data = archive.read_bytes()
    extraction = StreamedExtraction(dest_dir=tmp_path / "streamed", format=format, limits=LIMITS, archive_size=len(data))
    feed_all(extraction, data)
    streamed = extraction.finish()

    afterwards = archive_extract(archive_path=archive, dest_dir=tmp_path / "after", format=format, limits=LIMITS)
    assert streamed == afterwards
    assert len(streamed["files"]) == 41
    for name in streamed["files"]:
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "after" / name).read_bytes()


def test_an_abandoned_extraction_leaves_nothing(model_archive, tmp_path):
    data = model_archive("tar.gz").read_bytes()
    dest = tmp_path / "streamed"
    extraction = StreamedExtraction(dest_dir=dest, format="tar.gz", limits=LIMITS, archive_size=len(data))
    feed_all(extraction, data[: len(data) // 2])
    extraction.abandon()
    assert not dest.exists()


def test_a_hostile_archive_is_refused_while_streaming_and_the_rest_is_dropped(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name in ("ok.txt", "../escape.txt", "after.txt"):
            info = tarfile.TarInfo(name)
            payload = os.urandom(300_000)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    data = buffer.getvalue()
    dest = tmp_path / "streamed"
    extraction = StreamedExtraction(dest_dir=dest, format="tar.gz", limits=LIMITS, archive_size=len(data))
    feed_all(extraction, data)
    with pytest.raises(UnsafeArchive, match=r"\.\."):
        extraction.finish()
    assert not dest.exists() and not (tmp_path / "escape.txt").exists()


def test_a_truncated_stream_is_refused(model_archive, tmp_path):
    data = model_archive("tar.gz").read_bytes()
    extraction = StreamedExtraction(dest_dir=tmp_path / "streamed", format="tar.gz", limits=LIMITS, archive_size=len(data))
    feed_all(extraction, data[:-1000])
    with pytest.raises(UnsafeArchive, match="truncated"):
        extraction.finish()
    assert not (tmp_path / "streamed").exists()


def test_the_compression_cap_counts_on_the_whole_archive(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 20 * 1024**2
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    data = buffer.getvalue()
    capped = ExtractionLimits(max_bytes=LIMITS.max_bytes, max_members=10, max_ratio=50.0)
    extraction = StreamedExtraction(dest_dir=tmp_path / "bomb", format="tar.gz", limits=capped, archive_size=len(data))
    feed_all(extraction, data)
    with pytest.raises(UnsafeArchive, match="compression ratio"):
        extraction.finish()
