"""Checksums computed while bytes stream in, so a download is verified without a second read.

Two digests, two jobs. SHA-256 is an archive's identity: it names shared copies and is what a publisher
signs off. BLAKE3 guards the files of an extracted copy on this node's disk: it is checked before every load
from disk, so it must cost a fraction of the load (several GB/s on one core, and it releases the GIL).
"""

import hashlib
import io
import os
import threading
from collections.abc import Callable

import blake3

# Out-of-order ranges kept in memory until the gap before them fills; beyond this they are read back.
PENDING_MEMORY_BYTES = 64 * 1024 * 1024
READ_BACK_BYTES = 8 * 1024 * 1024


class ChecksumMismatch(Exception):
    def __init__(self, *, expected: str, actual: str, where: str):
        super().__init__(f"SHA-256 mismatch for {where}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual
        self.where = where


class HashingWriter(io.RawIOBase):
    """A file that hashes the bytes written to it in file order, whatever order they arrive in.

    Ranged downloads write out of order (``write_at``, or ``seek`` + ``write``). Ranges at the hashed
    frontier are hashed at once; ranges ahead of it wait until the gap before them is filled, in memory up
    to a bound and beyond it in the file, read back once, so every byte is hashed exactly once.

    ``on_ordered``, if given, receives the same bytes in file order as they are hashed (e.g. to extract the
    archive while it downloads). It may block, which holds back the download: memory stays bounded.
    """

    def __init__(
        self, path: os.PathLike | str, *, on_ordered: Callable[[bytes], None] | None = None, keep: bool = True
    ):
        super().__init__()
        self._on_ordered = on_ordered
        # keep=False: bytes hashed and passed on at once never reach the file, which then only holds ranges
        # that arrived too far ahead to wait in memory (the caller extracts the stream and needs no archive).
        self._keep = keep
        self._file = open(path, "w+b")  # noqa: SIM115 - closed in close(); read back for ranges held on disk
        self._sha256 = hashlib.sha256()
        self._position = 0
        self._hashed_to = 0
        # Ranges ahead of the frontier: their bytes while they fit in PENDING_MEMORY_BYTES, else their size
        # (read back from the file when the frontier reaches them, so memory stays bounded however far
        # ahead a ranged stream runs).
        self._pending: dict[int, bytes | int] = {}
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._rehash_at_end = False
        self.bytes_written = 0
        # Set when writing to our own disk failed (full, read-only): the SDK may wrap or retry the error,
        # and the fetch must not blame the tier for it.
        self.local_error: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            raise io.UnsupportedOperation("HashingWriter cannot seek from the end")
        return self._position

    def write(self, data) -> int:
        with self._lock:
            self._write(self._position, data)
        return len(data)

    def write_at(self, offset: int, data) -> int:
        """``seek`` + ``write`` in one step, for writers in several threads."""
        with self._lock:
            return self._write(offset, data)

    def _write(self, offset: int, data) -> int:
        size = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        in_memory = offset > self._hashed_to and self._pending_bytes + size <= PENDING_MEMORY_BYTES
        if self._keep or not (offset == self._hashed_to or in_memory):
            self._file_write(offset, data)
        self._position = offset + size
        self.bytes_written += size
        if offset == self._hashed_to:
            self._hash(data, size)
            while self._hashed_to in self._pending:
                pending = self._pending.pop(self._hashed_to)
                if isinstance(pending, int):
                    self._hash_from_file(self._hashed_to, pending)
                else:
                    self._pending_bytes -= len(pending)
                    self._hash(pending, len(pending))
        elif offset > self._hashed_to:
            if in_memory:
                # Copied: the SDK may reuse its buffer.
                self._pending[offset] = bytes(data)
                self._pending_bytes += size
            else:
                self._pending[offset] = size
        else:
            # An SDK retrying a part rewrites bytes already hashed. Rare: pay one re-read at the end
            # rather than trusting a hash of bytes that may since have changed.
            self._rehash_at_end = True
        return size

    def _file_write(self, offset: int, data) -> None:
        try:
            if self._file.tell() != offset:
                self._file.seek(offset)
            self._file.write(data)
        except OSError as error:
            self.local_error = error
            raise

    def _hash_from_file(self, offset: int, size: int) -> None:
        self._file.flush()
        end = offset + size
        while offset < end:
            piece = os.pread(self._file.fileno(), min(READ_BACK_BYTES, end - offset), offset)
            if not piece:
                raise OSError(f"download file ended at byte {offset}, before {end}")
            self._hash(piece, len(piece))
            offset += len(piece)

    def _hash(self, data, size: int) -> None:
        self._sha256.update(data)
        self._hashed_to += size
        if self._on_ordered is not None:
            self._on_ordered(data)

    @property
    def rewritten(self) -> bool:
        """True when bytes already hashed (and passed on) were written again: only the file is to be trusted."""
        return self._rehash_at_end

    def hexdigest(self) -> str:
        if self._rehash_at_end and not self._keep:
            raise OSError("bytes already hashed were written again, and the archive was not kept to hash afresh")
        if self._rehash_at_end:
            self._file.flush()
            return file_sha256(self._file.name)
        if self._pending:
            raise OSError(f"download left a gap: {len(self._pending)} ranges after byte {self._hashed_to}")
        return self._sha256.hexdigest()

    def close(self) -> None:
        # No fsync: the download is a temporary that a crash sweeps away; what is kept is the extracted
        # folder, committed by an atomic rename.
        if not self.closed:
            self._file.close()
        super().close()


def file_sha256(path: os.PathLike | str, *, chunk_size: int = 4 * 1024 * 1024) -> str:
    sha256 = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(chunk_size):
            sha256.update(chunk)
    return sha256.hexdigest()


def file_blake3(path: os.PathLike | str) -> str:
    digest = blake3.blake3()
    if os.path.getsize(path):  # an empty file cannot be memory-mapped
        digest.update_mmap(path)
    return digest.hexdigest()
