"""Extracting a tar or tar.gz while it downloads, so the network and the disk work at the same time.

``HashingWriter`` hands the downloaded bytes over in file order; a thread reads them as a stream and extracts
into the staging folder with the same safety rules as ``archives.archive_extract``. Nothing extracted is
trusted before the whole archive's checksum has matched: until then the staging folder is only a temporary,
exactly as when extraction follows the download.
"""

import queue
import threading
from pathlib import Path

from cache_app.services import archives

# Pieces waiting between the download and the extraction: each is at most one SDK range (8 MiB), so memory
# stays bounded, and a download that outruns the disk waits.
QUEUE_PIECES = 8
_PUT_POLL_SECONDS = 0.05
_END = b""
_ABANDON = None


def _immutable(data) -> bool:
    return isinstance(data, bytes) or (isinstance(data, memoryview) and isinstance(data.obj, bytes))


class ExtractionAbandoned(Exception):
    """The download stopped before the archive's end (failure or checksum mismatch)."""


class _QueueReader:
    """The pieces in the queue as one stream: ``read`` hands over whole pieces (or their front) uncopied."""

    def __init__(self, pieces: queue.Queue):
        self._pieces = pieces
        self._current = memoryview(b"")
        self._ended = False

    def read(self, size: int = -1) -> memoryview | bytes:
        while not self._current:
            if self._ended:
                return b""
            piece = self._pieces.get()
            if piece is _ABANDON:
                raise ExtractionAbandoned("the download stopped before the end of the archive")
            if piece is _END:
                self._ended = True
                return b""
            self._current = memoryview(piece)
        if size is None or size < 0 or size >= len(self._current):
            size = len(self._current)
        out, self._current = self._current[:size], self._current[size:]
        return out


class StreamedExtraction:
    """Feed it the archive's bytes in order, then ``finish()`` for the manifest, or ``abandon()``."""

    def __init__(self, *, dest_dir: Path, format: str, limits: archives.ExtractionLimits, archive_size: int):
        self._pieces: queue.Queue = queue.Queue(maxsize=QUEUE_PIECES)
        self._ended = threading.Event()  # the extraction returned or raised
        self._manifest: dict | None = None
        self._error: BaseException | None = None
        source = _QueueReader(self._pieces)
        self._thread = threading.Thread(
            target=self._extract,
            kwargs={"source": source, "dest_dir": dest_dir, "format": format, "limits": limits, "size": archive_size},
            name="streamed-extraction",
            daemon=True,
        )
        self._thread.start()

    def _extract(self, *, source, dest_dir, format, limits, size) -> None:
        try:
            self._manifest = archives.archive_extract_stream(
                source=source, name="archive", archive_size=size, dest_dir=dest_dir, format=format, limits=limits
            )
        except BaseException as error:  # handed to the downloading thread by finish()
            self._error = error
        finally:
            self._ended.set()

    def feed(self, data) -> None:
        if len(data):
            # Immutable bytes (or a view of them) are passed on as they are; anything else is copied, since
            # its owner may reuse the buffer once the write returns.
            self._put(data if _immutable(data) else bytes(data))

    def finish(self) -> dict:
        """Wait for the extraction of the whole (verified) archive; raise what it raised."""
        self._put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._manifest

    def abandon(self) -> None:
        """Stop an unfinished extraction, which removes what it wrote. Once it has ended, does nothing."""
        self._put(_ABANDON)
        self._thread.join()

    def _put(self, piece) -> None:
        # Once the extraction has ended (it failed, or the archive ended before its padding), pieces are
        # dropped: blocking on a queue nobody reads would hang the download.
        while not self._ended.is_set():
            try:
                self._pieces.put(piece, timeout=_PUT_POLL_SECONDS)
                return
            except queue.Full:
                continue
