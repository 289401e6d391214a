"""Getting an artifact onto this node's disk: the disk -> shared -> origin half of the tiered cache.

``artifact_fetch`` returns the extracted folder of an artifact, fetching it if needed, following the steps
of docs/architecture.md ("One prediction, step by step", 3.1): hit check, single flight, room first, streamed and verified download from the first
tier with a good copy, safe extraction into a temporary folder, atomic rename, records, write-through.
Integrity, ownership and fault handling are described in docs/cache-integrity.md.
"""

import functools
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from cache_app.models import Artifact, CacheEntry, FetchRecord, Tier
from cache_app.services import archives, eviction
from cache_app.services.errors import ArtifactUnavailable, CacheStorageFault
from cache_app.services.eviction import TEMP_FOLDER, folder_quarantine, folder_remove
from cache_app.services.housekeeping import ENTRY_NAME, cache_root, cache_root_claim
from cache_app.services.integrity import HashingWriter
from cache_app.services.locks import (
    fetch_failure_forget,
    fetch_failure_remember,
    flight_landed,
    single_flight,
)
from cache_app.services.stats import counters
from cache_app.services.streaming import StreamedExtraction
from cache_app.services.tiers import tier_for
from cache_app.services.tiers.base import Location, ObjectMissing, TierError

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
MANIFEST_NAME = "MANIFEST.json"
MODEL_FOLDER = "model"
# The shared tier is one copy for the whole fleet: its entries carry this node name.
FLEET_NODE = "*"


class FetchFailed(ArtifactUnavailable):
    """No tier could supply a verified, safe copy. ``attempts`` says what each tier answered."""

    code = "model_fetch_failed"

    def __init__(self, artifact: Artifact, attempts: list[tuple[str, str]]):
        self.artifact = artifact
        self.attempts = attempts
        tried = "; ".join(f"{tier}: {reason}" for tier, reason in attempts) or "no tier to try"
        super().__init__(f"could not fetch artifact {artifact.pk}: {tried}")


class GenerationMoved(ArtifactUnavailable):
    """The artifact was cleared while this request held its older generation: fetch the current one."""

    code = "model_cleared_meanwhile"


# This node's disk entry id per cache key, so a disk hit needs no query (waiters released together by one
# fetch would otherwise each make one). Safe to keep: a row is never deleted, only its state changes, and a
# clear makes a new generation, hence a new key.
_entry_ids: dict[str, int] = {}


@dataclass
class Fetched:
    path: Path  # the extracted folder
    tier: str  # disk, shared or origin: where the bytes came from for this request
    seconds: float
    entry_id: int | None = None
    steps: dict[str, float] = field(default_factory=dict)


def entry_dir(artifact: Artifact) -> Path:
    return _entry_paths(cache_root(), artifact.cache_key)[0]


def _complete(artifact: Artifact) -> tuple[Path, Path] | None:
    """The entry's folder and its model folder if its completion marker is there, else None.

    Only a marker that is not there is a miss: one that cannot be looked at (an I/O error, a folder this
    process may not read) is a fault of this node's disk, said as such rather than guessed to be absent and
    fetched again into a folder that fails the same way."""
    folder, marker, model = _entry_paths(cache_root(), artifact.cache_key)
    try:
        os.stat(marker)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise CacheStorageFault.from_os_error(error, doing=f"looking for the disk copy {folder.name}") from error
    return folder, model


# Built once per entry: the requests woken by one fetch each look at the marker, and building the paths
# costs more than the look itself.
@functools.lru_cache(maxsize=1024)
def _entry_paths(root: Path, cache_key: str) -> tuple[Path, str, Path]:
    folder = root / cache_key
    return folder, str(folder / COMPLETE_MARKER), folder / MODEL_FOLDER


def shared_location(artifact: Artifact) -> Location | None:
    """Shared copies are named by content, so any node can find one and a stale one cannot be mistaken."""
    if not settings.MODEL_SHARED_URI or not artifact.sha256:
        return None
    return Location.parse(settings.MODEL_SHARED_URI).child(f"{artifact.sha256}.{artifact.format}")


def artifact_fetch(*, artifact: Artifact) -> Fetched:
    started = time.monotonic()
    cache_root_claim()
    while True:
        hit = _disk_hit(artifact, started=started)
        if hit is not None:
            return hit
        with single_flight(
            artifact.cache_key, timeout=settings.MODEL_FETCH_WAIT_SECONDS, done=lambda: _landed(artifact)
        ) as must_fetch:
            if must_fetch:
                counters().record(Tier.DISK, misses=1)
                # The deadline bounds the transfer, so it starts now: waiting for others has its own limit.
                deadline = time.monotonic() + settings.MODEL_FETCH_DEADLINE_SECONDS
                try:
                    fetched = _fetch_into_disk(
                        artifact,
                        started=started,
                        deadline=deadline,
                        on_committed=lambda: flight_landed(artifact.cache_key),
                    )
                except ArtifactUnavailable as error:
                    # Remembered while the locks are still held, so every waiter sees it when it wakes.
                    fetch_failure_remember(artifact.cache_key, error)
                    raise
                fetch_failure_forget(artifact.cache_key)
                return fetched
        # Someone else fetched it while we waited. The hit is recorded outside the locks, so waiters do not
        # queue behind each other's database writes; if it was evicted meanwhile, go round again.


def _landed(artifact: Artifact) -> bool:
    """Single flight's "done": the folder is complete. The thread that notices finds its row before it wakes
    the threads waiting behind it, so they find the id here instead of each making the same query.

    The folder appeared while this request waited, so a fetch just committed it and noted its row's id in
    the marker. A folder found at the first look may be older than the database (reset since): its row is
    always looked up, and a folder without one is adopted and checked (``_disk_hit``)."""
    complete = _complete(artifact)
    if complete is None:
        return False
    folder = complete[0]
    if artifact.cache_key not in _entry_ids:
        entry_id = _entry_id_noted(folder) or _entry_id_lookup(artifact)
        if entry_id is not None:
            _entry_ids[artifact.cache_key] = entry_id
    return True


def _entry_id_lookup(artifact: Artifact) -> int | None:
    return (
        CacheEntry.objects.filter(artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK)
        .values_list("pk", flat=True)
        .first()
    )


def _entry_id_note(artifact: Artifact, final: Path, entry_id: int) -> None:
    """Write the row's id into the completion marker (replacing it whole), so the other processes' waiters
    woken by this fetch find their row without a query. Only a hint: without it they query."""
    note = cache_root() / TEMP_FOLDER / f"{artifact.cache_key}.{uuid.uuid4().hex}.marker"
    try:
        note.write_text(f"{timezone.now().isoformat()}\nentry {entry_id}\n")
        os.replace(note, final / COMPLETE_MARKER)
    except OSError as error:
        logger.warning("could not note the entry id in %s: %s", final / COMPLETE_MARKER, error)
        note.unlink(missing_ok=True)


def _entry_id_noted(folder: Path) -> int | None:
    try:
        lines = (folder / COMPLETE_MARKER).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        if line.startswith("entry ") and line[6:].isdigit():
            return int(line[6:])
    return None


def _disk_hit(artifact: Artifact, *, started: float) -> Fetched | None:
    complete = _complete(artifact)
    if complete is None:
        return None
    folder, model = complete
    entry_id = _entry_ids.get(artifact.cache_key)
    if entry_id is None:
        entry_id = _entry_id_lookup(artifact)
    if entry_id is None:
        # A complete folder without a row (the database was reset, or a crash between rename and record):
        # adopt it; its files are checked against the manifest before they are loaded.
        try:
            entry_id = disk_entry_record(artifact, folder, verified=False).pk
        except (OSError, ValueError, KeyError) as error:
            folder_quarantine(folder, reason=f"complete, but its manifest is unreadable ({error})")
            return None
    _entry_ids[artifact.cache_key] = entry_id
    # Buffered like memory hits: concurrent waiters released by one fetch must not queue on row writes.
    counters().touch(entry_id)
    counters().record(Tier.DISK, hits=1)
    return Fetched(path=model, tier=Tier.DISK, seconds=time.monotonic() - started, entry_id=entry_id)


def _fetch_into_disk(
    artifact: Artifact, *, started: float, deadline: float, on_committed: Callable[[], None] = lambda: None
) -> Fetched:
    current = Artifact.objects.filter(pk=artifact.pk).values_list("generation", flat=True).first()
    if current is not None and current > artifact.generation:
        # Downloading a generation already cleared would only make a folder nobody asks for.
        raise GenerationMoved(f"artifact {artifact.pk} was cleared meanwhile (generation {current})")
    _drop_older_generations(artifact)
    needed = (artifact.size_bytes or 0) + (artifact.unpacked_bytes or 3 * (artifact.size_bytes or 0))
    eviction.disk_make_room(needed_bytes=needed, keep_artifact_id=artifact.pk)

    temp_root = cache_root() / TEMP_FOLDER
    # Temporaries carry the cache key: the sweep leaves them alone while this fetch holds the key's lock.
    archive_path = temp_root / f"{artifact.cache_key}.{uuid.uuid4().hex}.archive"
    staging = None
    steps: dict[str, float] = {}
    try:
        temp_root.mkdir(parents=True, exist_ok=True)
        step = time.monotonic()
        tier, staging, manifest = _download_verified(artifact, archive_path, deadline=deadline)
        steps["download"] = time.monotonic() - step

        step = time.monotonic()
        if manifest is None:
            manifest = archives.archive_extract(
                archive_path=archive_path,
                dest_dir=staging / MODEL_FOLDER,
                format=artifact.format,
                limits=archives.limits_from_settings(),
            )
        unpacked = manifest["total_bytes"]
        final = _commit(staging, manifest, entry_dir(artifact))
        steps["extract"] = time.monotonic() - step

        if artifact.unpacked_bytes != unpacked:
            # Written before the waiters wake, not after: woken together, they would compete with this write for
            # the CPU and the database, and this request's answer would wait for them.
            artifact.unpacked_bytes = unpacked
            artifact.save(update_fields=["unpacked_bytes"])
        entry = disk_entry_record(artifact, final, verified=True, size_bytes=unpacked)
        _entry_id_note(artifact, final, entry.pk)
        # Committed and recorded: whoever waits can serve it now, not after the write-through.
        on_committed()

        if tier == Tier.ORIGIN:
            step = time.monotonic()
            _write_through_to_shared(artifact, archive_path)
            steps["write_through"] = time.monotonic() - step
    except OSError as error:
        # Only this node's own disk is left to fail here: remote faults were turned into attempts above.
        raise CacheStorageFault.from_os_error(error, doing="writing the model's disk copy") from error
    finally:
        archive_path.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return Fetched(
        path=final / MODEL_FOLDER, tier=tier, seconds=time.monotonic() - started, entry_id=entry.pk, steps=steps
    )


def _commit(staging: Path, manifest: dict, final: Path) -> Path:
    """Manifest, read-only files, completion marker, fsync, then one atomic rename: the only commit point.

    The extracted files were fsynced as they were written; the folders are synced here, so after a crash the
    final folder is either absent or whole, marker included.
    """
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest))
    _make_read_only(staging / MODEL_FOLDER)
    (staging / COMPLETE_MARKER).write_text(timezone.now().isoformat())
    for name in (MANIFEST_NAME, COMPLETE_MARKER):
        _fsync(staging / name)
    for dirpath, _, _ in os.walk(staging):
        _fsync(Path(dirpath))
    if final.exists():
        # Under this key's locks and without its marker (the hit check said so): a leftover, never served.
        folder_remove(final)
    os.rename(staging, final)
    _fsync(final.parent)
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _download_verified(artifact: Artifact, archive_path: Path, *, deadline: float) -> tuple[str, Path, dict | None]:
    """Stream the archive from the first tier with a good copy; return that tier's name, the staging folder of
    that attempt and, when the archive could be extracted there while it downloaded, the manifest (else None).

    Each attempt has its own staging folder, removed when the attempt fails: a rejected copy (checksum
    mismatch, broken transfer) leaves nothing in the way of the next tier's attempt.
    """
    attempts: list[tuple[str, str]] = []
    sources = [(Tier.SHARED, shared_location(artifact)), (Tier.ORIGIN, Location.parse(artifact.source_uri))]
    for tier, location in sources:
        if location is None:
            continue
        if time.monotonic() >= deadline:
            attempts.append((tier, "not tried: the fetch deadline had passed"))
            break
        began = time.monotonic()
        staging = archive_path.with_name(f"{artifact.cache_key}.{uuid.uuid4().hex}.dir")
        extraction = _streamed_extraction(artifact, staging / MODEL_FOLDER)
        succeeded = False
        try:
            # The archive itself is only kept when it is extracted afterwards or written through to the shared
            # tier; otherwise its bytes go from the network through the hash into the extraction, once.
            keep = extraction is None or (tier == Tier.ORIGIN and shared_location(artifact) is not None)
            writer = HashingWriter(archive_path, on_ordered=extraction.feed if extraction else None, keep=keep)
            try:
                with writer:
                    tier_for(location).download(location, writer, deadline=deadline)
                    digest = writer.hexdigest()
                    size = writer.bytes_written
                    rewritten = writer.rewritten
            except ObjectMissing:
                counters().record(tier, misses=1)
                attempts.append((tier, f"no copy at {location.uri}"))
                continue
            except (TierError, OSError) as error:
                if writer.local_error is not None:
                    # Our disk failed, not the tier: every other tier would fail the same way.
                    raise CacheStorageFault.from_os_error(
                        writer.local_error, doing="writing the download"
                    ) from writer.local_error
                _fetch_failed(artifact, tier, began, f"{location.uri}: {error}", attempts)
                continue
            if artifact.sha256 and digest != artifact.sha256:
                _fetch_failed(
                    artifact,
                    tier,
                    began,
                    f"checksum mismatch at {location.uri}: expected {artifact.sha256}, got {digest}",
                    attempts,
                )
                if tier == Tier.SHARED:
                    _mark_shared(artifact, state=CacheEntry.State.CORRUPT)
                continue
            if not artifact.sha256:
                logger.warning("artifact %s has no expected SHA-256; recording the computed %s", artifact.pk, digest)
                artifact.sha256 = digest
                artifact.save(update_fields=["sha256"])
            # A hostile archive raises here, as archive_extract would. If the SDK wrote bytes again after they
            # were passed on, the streamed result is not trusted: the verified file is extracted instead.
            manifest = extraction.finish() if extraction is not None and not rewritten else None
            succeeded = True
        finally:
            if extraction is not None:
                extraction.abandon()  # stops and cleans up an unfinished extraction; a no-op once it has ended
            if not succeeded:
                shutil.rmtree(staging, ignore_errors=True)
        if manifest is None:
            shutil.rmtree(staging, ignore_errors=True)  # an untrusted streamed result: extract afresh
        seconds = time.monotonic() - began
        counters().record(tier, hits=1, bytes_transferred=size, fetch_seconds=seconds)
        FetchRecord.objects.create(
            artifact=artifact, node=settings.NODE_NAME, tier=tier, size_bytes=size, seconds=seconds
        )
        return tier, staging, manifest
    archive_path.unlink(missing_ok=True)
    raise FetchFailed(artifact, attempts)


def _streamed_extraction(artifact: Artifact, extract_to: Path) -> StreamedExtraction | None:
    """A tar or tar.gz of known size is extracted while it downloads; a zip's directory is at its end."""
    if artifact.format == Artifact.Format.ZIP or not artifact.size_bytes:
        return None
    return StreamedExtraction(
        dest_dir=extract_to,
        format=artifact.format,
        limits=archives.limits_from_settings(),
        archive_size=artifact.size_bytes,  # the compression-ratio cap counts on the whole archive
    )


def _fetch_failed(artifact, tier: str, began: float, reason: str, attempts: list) -> None:
    logger.warning("fetch of artifact %s from %s failed: %s", artifact.pk, tier, reason)
    counters().record(tier, errors=1)
    attempts.append((tier, reason))
    FetchRecord.objects.create(
        artifact=artifact, node=settings.NODE_NAME, tier=tier, seconds=time.monotonic() - began, error=reason
    )


def _write_through_to_shared(artifact: Artifact, archive_path: Path) -> None:
    location = shared_location(artifact)
    if location is None:
        return
    try:
        tier_for(location).upload(location, archive_path)
    except (TierError, OSError) as error:
        # The model is served all the same; the next node just goes to origin too.
        logger.warning("write-through of artifact %s to %s failed: %s", artifact.pk, location.uri, error)
        counters().record(Tier.SHARED, errors=1)
        return
    _mark_shared(artifact, state=CacheEntry.State.READY, location=location.uri)


def _mark_shared(artifact: Artifact, *, state: str, location: str = "") -> None:
    now = timezone.now()
    defaults = {"state": state, "generation": artifact.generation, "size_bytes": artifact.size_bytes or 0}
    if location:
        defaults.update(location=location, verified_at=now)
    CacheEntry.objects.update_or_create(artifact=artifact, node=FLEET_NODE, tier=Tier.SHARED, defaults=defaults)


def disk_entry_record(artifact: Artifact, folder: Path, *, verified: bool, size_bytes: int | None = None):
    """Point this node's disk row at ``folder``, unless the row already names a newer generation: a request
    holding an older generation never overwrites a newer one."""
    if size_bytes is None:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        size_bytes = manifest["total_bytes"]
    now = timezone.now()
    defaults = {
        "location": str(folder),
        "generation": artifact.generation,
        "size_bytes": size_bytes,
        "state": CacheEntry.State.READY,
        "last_accessed_at": now,
    }
    if verified:
        defaults["verified_at"] = now
    rows = CacheEntry.objects.filter(artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK)
    if not rows.filter(generation__lte=artifact.generation).update(**defaults):
        CacheEntry.objects.get_or_create(artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK, defaults=defaults)
    entry = rows.get()
    _entry_ids[artifact.cache_key] = entry.pk
    return entry


def entry_ids_reset() -> None:
    _entry_ids.clear()


def _drop_older_generations(artifact: Artifact) -> None:
    """Folders of this artifact under an older generation or checksum: a clear elsewhere made them stale.
    Newer generations are someone else's fresh copy and stay; each removal waits for its readers."""
    current = artifact.cache_key
    for folder in cache_root().glob(f"{artifact.pk}-*"):
        match = ENTRY_NAME.match(folder.name)
        if folder.name != current and match and int(match["generation"]) <= artifact.generation:
            folder_remove(folder)


def disk_copy_problems(folder: Path) -> list[str]:
    """What differs between an entry folder's files and its manifest; empty when the copy is intact."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        return archives.manifest_verify(root=folder / MODEL_FOLDER, manifest=manifest)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"manifest unreadable: {error}"]


def _make_read_only(root: Path) -> None:
    # Loading never writes into a model folder; read-only files make any code that tries fail loudly.
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
