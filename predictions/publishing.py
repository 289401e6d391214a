"""Publishing a version over HTTP (the API and the admin's upload page).

The upload is streamed to a temporary file while it is hashed, extracted with the cache's safe extraction
(no traversal, links or bombs), loaded with this server's AutoGluon, and only then published with
``services.model_publish`` (which uploads it to the origin as it is and records its schema and contract).
Publishing is idempotent by SHA-256: the same archive again is the version it already made.
"""

import errno
import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from cache_app.services import archives
from cache_app.services.errors import ArtifactUnavailable
from predictions import aliases, loaders, registry, services
from predictions.models import ModelVersion, Promotion

logger = logging.getLogger(__name__)
CHUNK_BYTES = 1024 * 1024
LOAD_REASON_MAX_CHARS = 500


class InvalidUpload(ValueError):
    """A 400: what was sent cannot be published; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class PublishUnavailable(ArtifactUnavailable):
    """A 503: the upload was fine, but this server could not store or upload it right now."""

    code = "publish_unavailable"


@dataclass
class Published:
    version: ModelVersion
    created: bool  # False: this archive was published before, ``version`` is that version
    promotion: Promotion | None = None  # the move of the current version to it, when one was asked for

    @property
    def current(self) -> bool:
        return self.version.model.current_version_id == self.version.pk


def version_publish_upload(
    *, name: str, upload, user=None, via: str = "api", importance_upload=None, make_current: bool = True
) -> Published:
    """Publish the archive in ``upload`` (a Django ``UploadedFile``) as a new version of model ``name``.

    Raises ``InvalidUpload`` for what the sender must fix, ``PublishUnavailable`` (or another
    ``ArtifactUnavailable``) for what this server could not do now. ``make_current`` on an existing model moves
    its current version through a promotion (warmed in every serving process first).
    """
    try:
        services.model_name_validate(name)
    except services.PublishFailed as error:
        raise InvalidUpload("name", str(error)) from None
    try:
        with tempfile.TemporaryDirectory(prefix="publish-upload-", dir=settings.PUBLISH_UPLOAD_DIR) as work:
            published = _publish_in(Path(work), name, upload, importance_upload, user=user, via=via)
    except OSError as error:
        raise PublishUnavailable(f"could not store the upload on this server: {error}") from error
    if published.created and make_current and not published.current:
        published.promotion = aliases.alias_move(
            model=published.version.model, version=published.version, name=aliases.CURRENT, user=user
        )
        published.version.model.refresh_from_db()
    return published


def _publish_in(work: Path, name: str, upload, importance_upload, *, user, via: str) -> Published:
    archive_path = work / "upload"
    sha256 = _stream_to(upload, archive_path)
    existing = (
        ModelVersion.objects.select_related("artifact", "model")
        .filter(model__name=name, artifact__sha256=sha256)
        .order_by("number")
        .first()
    )
    if existing is not None:
        return Published(version=existing, created=False)
    extracted = work / "extracted"
    try:
        format = archives.detect_format(archive_path)
        archives.archive_extract(
            archive_path=archive_path, dest_dir=extracted, format=format, limits=archives.limits_from_settings()
        )
        root = loaders.predictor_root(extracted)
    except (archives.UnsafeArchive, loaders.NotAPredictor) as error:
        raise InvalidUpload("archive", _private(error, work)) from None
    _load_check(root, work)
    importance = _importance(importance_upload, root)
    try:
        version = services.model_publish(
            predictor_dir=root, name=name, format=format, user=user, archive=archive_path, via=via,
            feature_importance=importance, make_current=False, profile=True,
        )
    except services.PublishFailed as error:  # the origin refused the upload: nothing was recorded
        raise PublishUnavailable(str(error)) from error
    logger.info("published %s over HTTP (sha256 %s)", version, sha256)
    return Published(version=version, created=True)


def _load_check(root: Path, work: Path) -> None:
    """Load (and persist) the predictor as the memory tier would: a model this server cannot serve is refused now.

    Unpickling runs whatever the upload holds, so any exception may come of it and is the sender's to fix;
    only this server's own faults (disk, memory) are a 503.
    """
    try:
        loaders.predictor_load(root)
    except loaders.IncompatibleModel as error:
        raise InvalidUpload("archive", _private(error, work)) from None
    except MemoryError:
        raise PublishUnavailable("not enough memory on this server to load the predictor") from None
    except OSError as error:
        if error.errno not in _UPLOAD_ERRNOS:
            raise PublishUnavailable(f"could not load the upload on this server: {_private(error, work)}") from error
        raise InvalidUpload("archive", _cannot_load(error, work)) from None
    except Exception as error:  # noqa: BLE001 - see the docstring
        logger.info("refused an upload AutoGluon cannot load", exc_info=True)
        raise InvalidUpload("archive", _cannot_load(error, work)) from None


# OSErrors that say what the upload lacks (a file its pickles name), not that this server failed; an
# OSError without an errno is a library refusing the bytes it read (gzip's BadGzipFile, for one).
_UPLOAD_ERRNOS = {None, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def _cannot_load(error: Exception, work: Path) -> str:
    reason = _private(error, work)
    if len(reason) > LOAD_REASON_MAX_CHARS:  # an exception may repeat a huge key or value from the pickle
        reason = f"{reason[: LOAD_REASON_MAX_CHARS - 1]}…"
    return f"AutoGluon cannot load this predictor: {type(error).__name__}: {reason}"


def _private(error: Exception, work: Path) -> str:
    # The server's temporary folder is none of the sender's business.
    return str(error).replace(str(work), "upload")


def _stream_to(upload, path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for chunk in upload.chunks(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _importance(upload, root: Path) -> dict:
    if upload is None:
        return {}
    from autogluon.tabular import TabularPredictor

    features = list(TabularPredictor.load(str(root), verbosity=0, require_version_match=False).original_features)
    data = upload.read(registry.FEATURE_IMPORTANCE_MAX_BYTES + 1)
    if len(data) > registry.FEATURE_IMPORTANCE_MAX_BYTES:
        raise InvalidUpload("feature_importance", f"larger than {registry.FEATURE_IMPORTANCE_MAX_BYTES} bytes")
    try:
        return registry.feature_importance_parse(data=data, filename=upload.name, features=features)
    except registry.InvalidImportance as error:
        raise InvalidUpload("feature_importance", str(error)) from None
