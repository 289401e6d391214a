"""The one exception family for "this model cannot be served right now".

Every layer that can fail to produce a servable model (fetching, locking, room on disk, extraction, and
``predictions``' loading) raises a subclass, so API, web UI and jobs catch one class and answer with its
``code`` instead of each keeping its own list.
"""

import errno


class ArtifactUnavailable(Exception):
    code = "model_unavailable"


class CacheStorageFault(ArtifactUnavailable):
    """This node's cache folder failed under us: full, read-only, or an I/O error. ``code`` says which."""

    code = "cache_storage_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @classmethod
    def from_os_error(cls, error: OSError, *, doing: str) -> "CacheStorageFault":
        code = _STORAGE_CODES.get(error.errno, cls.code)
        return cls(f"the model cache folder failed while {doing}: {error.strerror or error}", code=code)


_STORAGE_CODES = {
    errno.ENOSPC: "cache_disk_full",
    errno.EDQUOT: "cache_disk_full",
    errno.EROFS: "cache_read_only",
    errno.EACCES: "cache_read_only",
    errno.EPERM: "cache_read_only",
}


class CacheFolderNotOwned(ArtifactUnavailable):
    """``MODEL_CACHE_DIR`` holds data the cache did not create: it is never written to, let alone swept."""

    code = "cache_folder_not_owned"
