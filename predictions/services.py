"""Publishing models and running predictions. The API, the web UI, commands and jobs all call these."""

import functools
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from cache_app.models import Artifact
from cache_app.services import archives
from cache_app.services.integrity import file_sha256
from cache_app.services.serving import artifact_serve
from cache_app.services.tiers import tier_for
from cache_app.services.tiers.base import Location, TierError
from predictions import loaders, registry, serving_profile
from predictions.batching import predictor_answer_batched
from predictions.models import MLModel, ModelVersion
from predictions.prediction_logs import prediction_log_record

logger = logging.getLogger(__name__)


class PublishFailed(Exception):
    pass


# The web UI's URLs take a slug (``<slug:name>``) and the name is the origin folder of its archives: a
# name outside this pattern could not be linked to, and could climb out of the origin with "..".
MODEL_NAME = re.compile(r"[A-Za-z0-9_-]+")
MODEL_NAME_MAX_LENGTH = MLModel._meta.get_field("name").max_length
# ``/api/models/cache`` is the cache endpoint, so a model of that name could never be reached by name.
RESERVED_MODEL_NAMES = {"cache"}


def model_name_validate(name: str) -> None:
    """Refuse a model name that is not a slug, before anything is archived, uploaded or recorded."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise PublishFailed(
            f"invalid model name {name!r}: use letters, digits, '-' and '_' only (a slug such as 'house-prices')"
        )
    if len(name) > MODEL_NAME_MAX_LENGTH:
        raise PublishFailed(f"invalid model name {name!r}: at most {MODEL_NAME_MAX_LENGTH} characters")
    if name.lower() in RESERVED_MODEL_NAMES:
        raise PublishFailed(f"invalid model name {name!r}: reserved by the API")


def model_publish(
    *,
    predictor_dir: Path,
    name: str,
    origin_uri: str | None = None,
    format: str = "zip",
    user=None,
    reference_csv: Path | None = None,
    archive: Path | None = None,
    via: str = "cli",
    feature_importance: dict | None = None,
    make_current: bool = True,
    profile: bool = False,
) -> ModelVersion:
    """Archive a predictor folder, upload it to the origin, then record the version and its schema.

    ``archive`` is an archive of ``predictor_dir`` already made (an upload, ``predictions.publishing``): it is
    uploaded as it is, so its SHA-256 is the one recorded. Without ``make_current`` a model's first version still
    becomes current (a model without one is not served); later ones wait for a promotion. ``profile`` measures
    the version in a fresh process first (``predictions.serving_profile``: seconds, so commands and uploads ask).

    The upload comes first and the records after, in one transaction: a failure at any step leaves the
    registry as it was (at worst an unreferenced archive at the origin, named by its content).
    """
    model_name_validate(name)
    predictor_dir = Path(predictor_dir)
    if not predictor_dir.is_dir():
        raise PublishFailed(f"{predictor_dir} does not exist or is not a folder")
    if format not in Artifact.Format.values:
        raise PublishFailed(f"unknown format {format!r}: use one of {', '.join(Artifact.Format.values)}")
    try:
        root = loaders.predictor_root(predictor_dir)
        schema = loaders.predictor_schema(root, reference_csv=reference_csv)
    except (loaders.NotAPredictor, loaders.InvalidReference) as error:
        raise PublishFailed(str(error)) from error
    leaderboard = registry.predictor_leaderboard(root)
    measured = {}
    if profile:
        measured = serving_profile.version_profile_measure(
            root=root, features=schema["features"], contract=schema["input_contract"],
            timeout=settings.MODEL_PROFILE_TIMEOUT_SECONDS,
        )

    origin = Location.parse(origin_uri or settings.MODEL_ORIGIN_URI)
    with tempfile.TemporaryDirectory(prefix="publish-") as workdir:
        archive_path = Path(archive) if archive is not None else Path(workdir) / f"model.{format}"
        if archive is None:
            archives.archive_create(source_dir=root, dest_path=archive_path, format=format)
        sha256 = file_sha256(archive_path)
        size = archive_path.stat().st_size
        try:
            location = origin.child(f"{name}/{sha256}.{format}")
            tier_for(location).upload(location, archive_path)
        except ValueError as error:  # an unsafe key: refused before anything is written
            raise PublishFailed(str(error)) from error
        except (TierError, OSError) as error:
            raise PublishFailed(f"could not upload to the origin {origin.uri}: {error}") from error

    with transaction.atomic():
        model, _ = MLModel.objects.select_for_update().get_or_create(name=name)
        number = (model.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        artifact = Artifact.objects.create(
            label=f"{name} v{number}",
            source_uri=location.uri,
            sha256=sha256,
            size_bytes=size,
            unpacked_bytes=loaders.folder_bytes(root),
            format=format,
        )
        version = ModelVersion.objects.create(
            model=model,
            number=number,
            artifact=artifact,
            label=schema["label"],
            problem_type=schema["problem_type"],
            eval_metric=schema["eval_metric"],
            features=schema["features"],
            class_labels=schema["class_labels"],
            input_contract=schema["input_contract"],
            autogluon_version=schema["autogluon_version"],
            python_version=schema["python_version"],
            published_by=user,
            leaderboard=leaderboard,
            feature_importance=feature_importance or {},
            published_via=via,
            serving_profile=measured,
        )
        if make_current or model.current_version_id is None:
            model.current_version = version
            model.save(update_fields=["current_version"])
    logger.info("published %s v%s (%s bytes, sha256 %s) to %s", name, number, size, sha256, location.uri)
    return version


def prediction_column(version: ModelVersion) -> str:
    """The predictions' column in every CSV result (API, web UI, jobs): beside the input, never over it."""
    return "prediction" if "prediction" not in version.feature_names else f"predicted_{version.label}"


@dataclass
class PredictionResult:
    version: ModelVersion
    predictions: list
    served_from: str
    from_cache: bool
    timings_ms: dict[str, float]
    probabilities: list[dict] | None = None
    extras: dict = field(default_factory=dict)


def predictor_serve(*, version: ModelVersion):
    """The persisted predictor of a version, through every cache tier."""
    measured = (version.serving_profile or {}).get("resident_bytes")
    loader = functools.partial(loaders.predictor_load, resident_bytes=measured)
    return artifact_serve(artifact=version.artifact, loader=loader)


def pinned_versions_warm() -> list[tuple[ModelVersion, str]]:
    """Load every pinned version into this process's memory (fetching it first if needed).

    Run in the gunicorn master before it forks, so every worker starts with them warm (copy-on-write).
    A version that cannot be fetched is logged and skipped: the server still starts.
    """
    warmed = []
    for version in ModelVersion.objects.select_related("artifact", "model").filter(artifact__pinned=True):
        try:
            warmed.append((version, predictor_serve(version=version).tier))
        except Exception:  # one broken model must not keep the portal from starting
            logger.exception("could not warm pinned %s", version)
    return warmed


def prediction_run(*, version: ModelVersion, frame, user=None, channel: str = "api", started: float | None = None):
    """Predict ``frame`` (validated by ``predictions.inputs``: its ``Rows.features``, or a DataFrame) and log it.

    The answer is exactly ``TabularPredictor.predict`` (and ``predict_proba`` for classifiers) on the
    frame, from one pass of the models: see ``loaders.predictor_answer``.
    """
    started = time.monotonic() if started is None else started
    served = predictor_serve(version=version)
    began = time.monotonic()
    # Concurrent small requests for this model share one predict call (each gets its own rows' answers).
    predictions, probabilities = predictor_answer_batched(served.obj, frame)
    predict_seconds = time.monotonic() - began
    timings = {
        "fetch": served.fetch_seconds * 1000,
        "load": served.load_seconds * 1000,
        "predict": predict_seconds * 1000,
        "total": (time.monotonic() - started) * 1000,
    }
    timings = {step: round(ms, 3) for step, ms in timings.items()}
    # Buffered and written in bulk in the background: no INSERT on the request's path (see prediction_logs).
    prediction_log_record(
        user=user if user is not None and user.is_authenticated else None,
        version=version,
        node=settings.NODE_NAME,
        rows=len(frame),
        served_from=served.tier,
        fetch_ms=timings["fetch"],
        load_ms=timings["load"],
        predict_ms=timings["predict"],
        total_ms=timings["total"],
        channel=channel,
    )
    return PredictionResult(
        version=version,
        predictions=predictions,
        probabilities=probabilities,
        served_from=served.tier,
        from_cache=served.from_cache,
        timings_ms=timings,
    )

