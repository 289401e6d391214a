"""Archive round trips, manifests, and every refusal of a hostile archive, built in code per test."""

import gzip
import io
import os
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from cache_app.services.archives import (
    ExtractionLimits,
    UnsafeArchive,
    archive_create,
    archive_extract,
    detect_format,
    limits_from_settings,
    manifest_build,
    manifest_verify,
)

LIMITS = ExtractionLimits(max_bytes=10 * 1024**2, max_members=100, max_ratio=1000.0)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "models" / "weighted").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "predictor.pkl").write_bytes(b"predictor" * 1000)
    (root / "models" / "trainer.pkl").write_bytes(os.urandom(70_000))
    (root / "models" / "weighted" / "model.pkl").write_bytes(b"")
    (root / "version.txt").write_text("1.2.0\n")
    return root


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], *, gz: bool = False) -> Path:
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _tarinfo(name: str, **attrs) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _assert_refused(tmp_path: Path, archive: Path, fmt: str, match: str, limits: ExtractionLimits = LIMITS):
    dest = tmp_path / "dest"
    before = _snapshot(tmp_path, exclude=dest)
    with pytest.raises(UnsafeArchive, match=match):
        archive_extract(archive_path=archive, dest_dir=dest, format=fmt, limits=limits)
    # Nothing usable is left behind, and nothing appeared anywhere else.
    assert not dest.exists() or not any(dest.iterdir())
    assert _snapshot(tmp_path, exclude=dest) == before


def _snapshot(root: Path, *, exclude: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if exclude not in (p, *p.parents)}


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "tar"])
def test_round_trip_preserves_tree(tmp_path, model_dir, fmt):
    archive = tmp_path / f"model.{fmt}"
    archive_create(source_dir=model_dir, dest_path=archive, format=fmt)
    dest = tmp_path / "out"

    written = archive_extract(archive_path=archive, dest_dir=dest, format=fmt, limits=LIMITS)

    original = manifest_build(root=model_dir)
    assert manifest_build(root=dest) == original
    assert written == original  # the manifest hashed while writing equals one built by reading back
    assert manifest_verify(root=dest, manifest=original) == []
    assert (dest / "empty").is_dir()
    assert stat.S_IMODE((dest / "predictor.pkl").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "models").stat().st_mode) == 0o755
    assert detect_format(archive) == fmt
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("gz", [False, True])
def test_tars_from_other_packers_extract_byte_for_byte(tmp_path, tar_format, gz):
    # Long names need extension headers (GNU "L", PAX "x") before the member; sizes on and off the
    # 512-byte blocks move where each next header starts.
    deep = "d" * 60 + "/" + "e" * 60 if tar_format != tarfile.USTAR_FORMAT else "short"
    members = {f"{deep}/n-{size}.bin": os.urandom(size) for size in (0, 1, 511, 512, 513, 1024, 70_000)}
    archive = tmp_path / ("a.tar.gz" if gz else "a.tar")
    with tarfile.open(archive, "w:gz" if gz else "w", format=tar_format) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dest = tmp_path / "out"

    archive_extract(archive_path=archive, dest_dir=dest, format="tar.gz" if gz else "tar", limits=LIMITS)

    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == members


def test_a_gnu_sparse_member_extracts_with_its_holes(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "sparse.bin", "wb") as f:
        f.write(b"head" * 100)
        f.seek(3 * 1024 * 1024)
        f.write(b"tail" * 100)
    (source / "after.txt").write_bytes(b"after the sparse member")
    archive = tmp_path / "a.tar.gz"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-czf", str(archive), "-C", str(source), "."], check=True)
    assert any(m.issparse() for m in tarfile.open(archive).getmembers())
    dest = tmp_path / "out"

    holes_allowed = LIMITS._replace(max_ratio=1e6)  # a hole is nothing in the archive, megabytes on disk
    archive_extract(archive_path=archive, dest_dir=dest, format="tar.gz", limits=holes_allowed)

    assert (dest / "sparse.bin").read_bytes() == (source / "sparse.bin").read_bytes()
    assert (dest / "after.txt").read_bytes() == b"after the sparse member"


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "tar"])
def test_create_is_deterministic_and_sorted(tmp_path, model_dir, fmt):
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    archive_create(source_dir=model_dir, dest_path=first, format=fmt)
    archive_create(source_dir=model_dir, dest_path=second, format=fmt)

    assert first.read_bytes() == second.read_bytes()
    if fmt == "zip":
        with zipfile.ZipFile(first) as zf:
            names = [n.rstrip("/") for n in zf.namelist()]
    else:
        with tarfile.open(first) as tf:
            names = tf.getnames()
    assert names == sorted(names)
    assert "models/weighted/model.pkl" in names
    assert not any(n.startswith("/") or ".." in n for n in names)


def test_create_refuses_symlink_in_source(tmp_path, model_dir):
    (model_dir / "link").symlink_to(model_dir / "version.txt")
    with pytest.raises(ValueError, match="only regular files and folders"):
        archive_create(source_dir=model_dir, dest_path=tmp_path / "m.zip", format="zip")
    assert not (tmp_path / "m.zip").exists()


def test_extract_refuses_non_empty_destination(tmp_path, model_dir):
    archive = tmp_path / "m.tar"
    archive_create(source_dir=model_dir, dest_path=archive, format="tar")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale").write_text("x")
    with pytest.raises(ValueError, match="must be empty"):
        archive_extract(archive_path=archive, dest_dir=dest, format="tar", limits=LIMITS)


def test_limits_from_settings(settings):
    settings.MODEL_EXTRACT_MAX_BYTES = 123
    settings.MODEL_EXTRACT_MAX_MEMBERS = 7
    settings.MODEL_EXTRACT_MAX_RATIO = 9.5
    assert limits_from_settings() == ExtractionLimits(max_bytes=123, max_members=7, max_ratio=9.5)


# -------------------------------------------------------------------------------------------- manifests


def test_manifest_build_lists_files_with_hashes(model_dir):
    manifest = manifest_build(root=model_dir)
    assert set(manifest["files"]) == {
        "predictor.pkl",
        "version.txt",
        "models/trainer.pkl",
        "models/weighted/model.pkl",
    }
    assert manifest["files"]["models/weighted/model.pkl"] == {
        "blake3": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "size": 0,
    }
    assert manifest["total_bytes"] == 9000 + 70_000 + 0 + 6


def test_manifest_verify_detects_changed_byte(model_dir):
    manifest = manifest_build(root=model_dir)
    path = model_dir / "models" / "trainer.pkl"
    data = bytearray(path.read_bytes())
    data[1234] ^= 0x01
    path.write_bytes(bytes(data))
    assert manifest_verify(root=model_dir, manifest=manifest) == ["changed file: models/trainer.pkl (blake3 differs)"]


def test_manifest_verify_detects_size_change(model_dir):
    manifest = manifest_build(root=model_dir)
    (model_dir / "version.txt").write_text("1.2.0-patched\n")
    problems = manifest_verify(root=model_dir, manifest=manifest)
    assert problems == ["changed file: version.txt (size 14, expected 6)"]


def test_manifest_verify_detects_missing_file(model_dir):
    manifest = manifest_build(root=model_dir)
    (model_dir / "models" / "weighted" / "model.pkl").unlink()
    assert manifest_verify(root=model_dir, manifest=manifest) == ["missing file: models/weighted/model.pkl"]


def test_manifest_verify_detects_extra_file(model_dir):
    manifest = manifest_build(root=model_dir)
    (model_dir / "empty" / "intruder.py").write_text("import os")
    assert manifest_verify(root=model_dir, manifest=manifest) == ["unexpected file: empty/intruder.py"]


def test_manifest_verify_detects_symlink_swapped_in(model_dir):
    manifest = manifest_build(root=model_dir)
    (model_dir / "version.txt").unlink()
    (model_dir / "version.txt").symlink_to("/etc/hostname")
    assert manifest_verify(root=model_dir, manifest=manifest) == ["not a regular file: version.txt"]


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_refuses_dot_dot_traversal(tmp_path, fmt):
    name = "models/../../evil.txt"
    archive = tmp_path / f"a.{fmt}"
    if fmt == "zip":
        _zip(archive, [("ok.txt", b"fine"), (name, b"owned")])
    else:
        _tar(archive, [(_tarinfo("ok.txt"), b"fine"), (_tarinfo(name), b"owned")])
    _assert_refused(tmp_path, archive, fmt, r"'\.\.' component")
    assert not (tmp_path / "evil.txt").exists()


def test_refuses_backslash_traversal_in_zip(tmp_path):
    archive = _zip(tmp_path / "a.zip", [("..\\evil.txt", b"owned")])
    _assert_refused(tmp_path, archive, "zip", r"'\.\.' component")


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_refuses_absolute_path(tmp_path, fmt):
    target = tmp_path / "abs_target.txt"
    archive = tmp_path / f"a.{fmt}"
    if fmt == "zip":
        _zip(archive, [(str(target), b"owned")])  # writestr keeps the leading slash of a str name
    else:
        _tar(archive, [(_tarinfo(str(target)), b"owned")])
    _assert_refused(tmp_path, archive, fmt, "absolute path")
    assert not target.exists()


def test_refuses_drive_letter(tmp_path):
    archive = _zip(tmp_path / "a.zip", [(zipfile.ZipInfo("C:/Windows/evil.dll"), b"owned")])
    _assert_refused(tmp_path, archive, "zip", "drive letter")


def test_refuses_tar_symlink(tmp_path):
    archive = _tar(
        tmp_path / "a.tar",
        [
            (_tarinfo("escape", type=tarfile.SYMTYPE, linkname=str(tmp_path)), None),
            (_tarinfo("escape/evil.txt"), b"owned"),
        ],
    )
    _assert_refused(tmp_path, archive, "tar", "symlink")
    assert not (tmp_path / "evil.txt").exists()


def test_refuses_zip_symlink(tmp_path):
    info = zipfile.ZipInfo("escape")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip(tmp_path / "a.zip", [(info, str(tmp_path).encode()), ("escape/evil.txt", b"owned")])
    _assert_refused(tmp_path, archive, "zip", "symlink")
    assert not (tmp_path / "evil.txt").exists()


def test_refuses_tar_hard_link(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    archive = _tar(tmp_path / "a.tar", [(_tarinfo("leak", type=tarfile.LNKTYPE, linkname=str(outside)), None)])
    _assert_refused(tmp_path, archive, "tar", "hard link")
    assert outside.read_text() == "secret"


@pytest.mark.parametrize(
    ("tar_type", "message"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "fifo")],
)
def test_refuses_tar_devices_and_fifos(tmp_path, tar_type, message):
    archive = _tar(tmp_path / "a.tar", [(_tarinfo("dev/thing", type=tar_type, devmajor=1, devminor=3), None)])
    _assert_refused(tmp_path, archive, "tar", message)


def test_refuses_zip_special_file_mode(tmp_path):
    info = zipfile.ZipInfo("fifo")
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    archive = _zip(tmp_path / "a.zip", [(info, b"")])
    _assert_refused(tmp_path, archive, "zip", "special file")


def test_refuses_zip_bomb_early(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("zeros.bin", "w") as member:
            for _ in range(50):
                member.write(bytes(1024**2))
    assert archive.stat().st_size < 200_000
    limits = ExtractionLimits(max_bytes=1024**3, max_members=10, max_ratio=20.0)
    _assert_refused(tmp_path, archive, "zip", "compression ratio exceeds 20", limits)


def test_refuses_gzip_bomb(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = _tarinfo("zeros.bin", size=50 * 1024**2)
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    limits = ExtractionLimits(max_bytes=1024**3, max_members=10, max_ratio=20.0)
    _assert_refused(tmp_path, archive, "tar.gz", "compression ratio exceeds 20", limits)


def test_refuses_too_many_members(tmp_path):
    limits = ExtractionLimits(max_bytes=1024**2, max_members=5, max_ratio=1000.0)
    members = [(_tarinfo(f"f{i}.txt"), b"x") for i in range(6)]
    _assert_refused(tmp_path, _tar(tmp_path / "a.tar", members), "tar", "too many members", limits)
    zipped = _zip(tmp_path / "a.zip", [(f"f{i}.txt", b"x") for i in range(6)])
    _assert_refused(tmp_path, zipped, "zip", "too many members", limits)


def test_refuses_too_many_total_bytes(tmp_path):
    limits = ExtractionLimits(max_bytes=100_000, max_members=10, max_ratio=1000.0)
    # Random data: incompressible, so only the byte cap (not the ratio) can trip.
    archive = _tar(tmp_path / "a.tar", [(_tarinfo("a.bin"), os.urandom(60_000)), (_tarinfo("b.bin"), os.urandom(60_000))])
    _assert_refused(tmp_path, archive, "tar", "exceed the limit of 100000", limits)


def test_refuses_zip_whose_header_understates_the_size(tmp_path):
    archive = _zip(tmp_path / "a.zip", [("big.bin", os.urandom(50_000))])
    raw = bytearray(archive.read_bytes())
    # Claim 1,000 uncompressed bytes in both the local header and the central directory.
    raw[22:26] = (1000).to_bytes(4, "little")
    central = raw.index(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    _assert_refused(tmp_path, archive, "zip", "corrupt or truncated")


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_refuses_duplicate_names(tmp_path, fmt):
    archive = tmp_path / f"a.{fmt}"
    if fmt == "zip":
        with pytest.warns(UserWarning, match="Duplicate name"):
            _zip(archive, [("models/a.pkl", b"good"), ("models/./a.pkl", b"evil"), ("models/a.pkl", b"evil")])
    else:
        _tar(archive, [(_tarinfo("models/a.pkl"), b"good"), (_tarinfo("./models//a.pkl"), b"evil")])
    _assert_refused(tmp_path, archive, fmt, "duplicate member name")


def test_refuses_file_colliding_with_folder(tmp_path):
    archive = _tar(tmp_path / "a.tar", [(_tarinfo("models/a.pkl"), b"x"), (_tarinfo("models"), b"file")])
    _assert_refused(tmp_path, archive, "tar", "collides with a folder")


def test_refuses_path_through_a_file(tmp_path):
    archive = _zip(tmp_path / "a.zip", [("models", b"file"), ("models/a.pkl", b"x")])
    _assert_refused(tmp_path, archive, "zip", "which is a file")


def test_refuses_encrypted_zip_member(tmp_path):
    archive = _zip(tmp_path / "a.zip", [("secret.bin", b"data")])
    raw = bytearray(archive.read_bytes())
    # Set the "encrypted" general-purpose flag in both the local header and the central directory.
    raw[6] |= 0x01
    central = raw.index(b"PK\x01\x02")
    raw[central + 8] |= 0x01
    archive.write_bytes(bytes(raw))
    _assert_refused(tmp_path, archive, "zip", "encrypted member")


def test_refuses_truncated_tar_gz(tmp_path, model_dir):
    archive = tmp_path / "m.tar.gz"
    archive_create(source_dir=model_dir, dest_path=archive, format="tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    _assert_refused(tmp_path, archive, "tar.gz", "corrupt or truncated")


def test_refuses_tar_truncated_on_a_header_boundary(tmp_path):
    archive = _tar(tmp_path / "a.tar", [(_tarinfo("a.txt"), b"a" * 512), (_tarinfo("b.txt"), b"b" * 512)])
    # Keep only the first member (header + one data block): tarfile alone would call this a complete archive.
    archive.write_bytes(archive.read_bytes()[:1024])
    _assert_refused(tmp_path, archive, "tar", "truncated")


@pytest.mark.parametrize("gz", [False, True])
def test_refuses_tar_cut_inside_a_member(tmp_path, gz):
    whole = _tar(tmp_path / "whole.tar", [(_tarinfo("a.bin"), os.urandom(5000)), (_tarinfo("b.txt"), b"b")])
    cut = whole.read_bytes()[: 512 + 3000]  # the first header and part of its data
    archive = tmp_path / ("cut.tar.gz" if gz else "cut.tar")
    archive.write_bytes(gzip.compress(cut) if gz else cut)
    _assert_refused(tmp_path, archive, "tar.gz" if gz else "tar", "corrupt or truncated")


def test_refuses_corrupt_zip_data(tmp_path):
    archive = _zip(tmp_path / "a.zip", [("a.txt", b"hello world " * 100)])
    raw = bytearray(archive.read_bytes())
    raw[40] ^= 0xFF  # inside the compressed data of the only member
    archive.write_bytes(bytes(raw))
    _assert_refused(tmp_path, archive, "zip", "corrupt or truncated")


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "tar"])
def test_refuses_not_an_archive(tmp_path, fmt):
    archive = tmp_path / "notes.txt"
    archive.write_bytes(b"just some text, definitely not an archive\n" * 30)
    with pytest.raises(UnsafeArchive, match="not a zip, tar.gz or tar archive"):
        detect_format(archive)
    _assert_refused(tmp_path, archive, fmt, "corrupt or truncated")


def test_detect_format_by_magic_not_name(tmp_path):
    raw_tar = _tar(tmp_path / "looks.zip", [(_tarinfo("a.txt"), b"a")])
    assert detect_format(raw_tar) == "tar"
    gz = tmp_path / "plain.tar"
    gz.write_bytes(gzip.compress(raw_tar.read_bytes()))
    assert detect_format(gz) == "tar.gz"


def _gz_variant(tmp_path: Path, model_dir: Path, shape) -> Path:
    raw_tar = tmp_path / "model.tar"
    archive_create(source_dir=model_dir, dest_path=raw_tar, format="tar")
    archive = tmp_path / "variant.tar.gz"
    archive.write_bytes(shape(raw_tar.read_bytes()))
    return archive


def test_a_gzip_of_several_members_or_zero_padding_extracts_whole(tmp_path, model_dir):
    for shape in (
        lambda tar: gzip.compress(tar[:1000]) + gzip.compress(tar[1000:]),
        lambda tar: gzip.compress(tar) + b"\0" * 3000,
    ):
        dest = tmp_path / f"x-{len(list(tmp_path.iterdir()))}"
        manifest = archive_extract(
            archive_path=_gz_variant(tmp_path, model_dir, shape), dest_dir=dest, format="tar.gz", limits=LIMITS
        )
        assert manifest == manifest_build(root=dest) == manifest_build(root=model_dir)


@pytest.mark.parametrize(
    "shape",
    [
        lambda tar: gzip.compress(tar) + b"\0\0" + b"not gzip",  # data after the padding
        lambda tar: gzip.compress(tar)[:-4],  # the trailer's length is cut off
        lambda tar: gzip.compress(tar)[:-8] + b"\xff" * 8,  # the trailer's CRC-32 and length are wrong
    ],
)
def test_a_gzip_with_a_bad_end_is_refused(tmp_path, model_dir, shape):
    archive = _gz_variant(tmp_path, model_dir, shape)
    _assert_refused(tmp_path, archive, "tar.gz", "corrupt or truncated")


def test_a_gzip_whose_data_changed_where_inflate_cannot_tell_is_refused_by_its_crc(tmp_path):
    """Stored (uncompressed) deflate blocks decode whatever bytes they hold: only the member's CRC-32 catches a
    changed byte, so this is the check the inflater must make."""
    tar = _tar(tmp_path / "a.tar", [(_tarinfo("weights.bin"), os.urandom(200_000))]).read_bytes()
    stored = bytearray(gzip.compress(tar, compresslevel=0))
    stored[len(stored) // 2] ^= 0x01
    archive = tmp_path / "flipped.tar.gz"
    archive.write_bytes(bytes(stored))
    _assert_refused(tmp_path, archive, "tar.gz", "corrupt or truncated")


@pytest.mark.parametrize("gz", [False, True])
def test_refuses_a_member_with_a_negative_size(tmp_path, gz):
    whole = _tar(tmp_path / "a.tar", [(_tarinfo("a.bin"), os.urandom(3000)), (_tarinfo("b.txt"), b"b")])
    raw = bytearray(whole.read_bytes())
    raw[124:136] = b"\xff" + (-1024).to_bytes(11, "big", signed=True)  # base-256 size field: -1024
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])  # the header's checksum, so tarfile reads the header
    archive = tmp_path / ("neg.tar.gz" if gz else "neg.tar")
    archive.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    _assert_refused(tmp_path, archive, "tar.gz" if gz else "tar", "negative member size")
