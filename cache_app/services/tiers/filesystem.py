"""The ``file://`` tier: a local or mounted folder (the embedded default origin, or an NFS share)."""

import os
import shutil
import stat
import tempfile
import time
from typing import BinaryIO

from .base import Location, ObjectMissing, RemoteTier, TierError

CHUNK_SIZE = 4 * 1024 * 1024


class FileSystemTier(RemoteTier):
    scheme = "file"

    def __init__(self, *, container: str = ""):
        # file:// locations carry the whole absolute path in ``key``; there is no container.
        self.container = container

    def download(self, location: Location, writer: BinaryIO, *, deadline: float) -> None:
        try:
            source = open(location.key, "rb")  # noqa: SIM115 - closed by the with below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise ObjectMissing(f"{location.uri} does not exist") from error
        except OSError as error:
            raise TierError(f"cannot open {location.uri}: {error}") from error
        with source:
            while True:
                # A stalled network mount must not hold the request past its deadline: check per chunk.
                if time.monotonic() > deadline:
                    raise TierError(f"deadline passed while reading {location.uri}")
                try:
                    chunk = source.read(CHUNK_SIZE)
                except OSError as error:
                    raise TierError(f"read failed for {location.uri}: {error}") from error
                if not chunk:
                    return
                writer.write(chunk)

    def upload(self, location: Location, source_path: os.PathLike | str) -> None:
        target = location.key
        folder = os.path.dirname(target)
        try:
            os.makedirs(folder, exist_ok=True)
            # Copy beside the target, then rename: readers never see a half-copied object, and the
            # rename stays atomic because it does not cross a filesystem boundary.
            descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
            try:
                with os.fdopen(descriptor, "wb") as destination, open(source_path, "rb") as source:
                    shutil.copyfileobj(source, destination, CHUNK_SIZE)
                    destination.flush()
                    os.fsync(destination.fileno())
                os.replace(temporary, target)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:
            raise TierError(f"upload to {location.uri} failed: {error}") from error

    def size(self, location: Location) -> int:
        try:
            status = os.stat(location.key)
        except (FileNotFoundError, NotADirectoryError) as error:
            raise ObjectMissing(f"{location.uri} does not exist") from error
        except OSError as error:
            raise TierError(f"cannot stat {location.uri}: {error}") from error
        if not stat.S_ISREG(status.st_mode):
            raise ObjectMissing(f"{location.uri} is not a file")
        return status.st_size

    def delete(self, location: Location) -> None:
        try:
            os.unlink(location.key)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise TierError(f"cannot delete {location.uri}: {error}") from error
