"""Everything that touches AutoGluon. Imported lazily: ``import autogluon.tabular`` costs seconds, and
``manage.py`` commands that never load a model should not pay it (gunicorn preloads it instead)."""

import json
import os
import platform
from pathlib import Path

from cache_app.services.errors import ArtifactUnavailable
from predictions import contract

# A predictor folder always holds these; anything without them is refused before it is archived.
PREDICTOR_MARKERS = ("predictor.pkl", "learner.pkl")


class NotAPredictor(ArtifactUnavailable):
    code = "model_not_a_predictor"


class InvalidReference(ValueError):
    """The reference CSV given at publish cannot describe the model's inputs."""


class IncompatibleModel(ArtifactUnavailable):
    """The predictor was saved by another AutoGluon or Python version than the one serving."""

    code = "model_incompatible"


def autogluon_version() -> str:
    from importlib.metadata import version

    return version("autogluon.tabular")


def predictor_root(folder: Path) -> Path:
    """The predictor folder inside an extracted archive (which may wrap it in one top-level folder)."""
    if all((folder / name).exists() for name in PREDICTOR_MARKERS):
        return folder
    children = [child for child in folder.iterdir() if child.is_dir()] if folder.is_dir() else []
    if len(children) == 1 and all((children[0] / name).exists() for name in PREDICTOR_MARKERS):
        return children[0]
    raise NotAPredictor(f"{folder} is not an AutoGluon TabularPredictor folder (no predictor.pkl / learner.pkl)")


def saved_versions(root: Path) -> tuple[str, str]:
    """(AutoGluon version, Python version) the predictor was saved with, from its own metadata."""
    try:
        metadata = json.loads((root / "metadata.json").read_text())
        return metadata.get("version", "unknown"), metadata.get("py_version", "unknown")
    except (OSError, ValueError):
        version_file = root / "version.txt"
        return (version_file.read_text().strip() if version_file.exists() else "unknown"), "unknown"


def predictor_load(folder: Path, *, resident_bytes: int | None = None):
    """The memory tier's loader: load, then ``persist`` so no request ever reads a pickle again.

    Version checks stay on: a predictor from another AutoGluon or Python is refused with both versions
    named rather than risking wrong predictions from a half-compatible unpickle.
    """
    from autogluon.tabular import TabularPredictor

    root = predictor_root(folder)
    saved_ag, saved_py = saved_versions(root)
    running_py = ".".join(platform.python_version_tuple()[:2])
    if saved_ag != autogluon_version() or (saved_py != "unknown" and saved_py != running_py):
        raise IncompatibleModel(
            f"the model was saved with AutoGluon {saved_ag} on Python {saved_py}; this server runs "
            f"AutoGluon {autogluon_version()} on Python {running_py}"
        )
    try:
        predictor = TabularPredictor.load(str(root), verbosity=0, require_version_match=True)
    except AssertionError as error:  # AutoGluon's own version check
        raise IncompatibleModel(str(error)) from error
    # "best" with its ancestors is exactly what predict uses; the memory tier bounds memory, so skip
    # AutoGluon's own check (a gc.collect per model, most of a cold load's time on big ensembles).
    predictor.persist(models="best", with_ancestors=True, max_memory=None)
    # The bytes measured at publish (predictions.serving_profile) when known; else the folder as an estimate.
    return predictor, resident_bytes or folder_bytes(root)


def predictor_answer(predictor, frame) -> tuple[list, list[dict] | None]:
    """``predictor.predict(frame)`` as plain values, and ``predict_proba`` per row for classifiers.

    Classifiers run the models once: ``predict_from_proba`` turns the probabilities into exactly what
    ``predict`` answers, the model's calibrated ``decision_threshold`` included (the most probable class is
    not the prediction when the threshold is not 0.5). Probabilities keep AutoGluon's class order; quantile
    regression answers one value per quantile level. No value is rounded: float32 outputs widen to float64
    exactly, and JSON carries them as they are.
    """
    if predictor.problem_type in ("binary", "multiclass"):
        proba = predictor.predict_proba(frame, as_multiclass=True)
        predictions = predictor.predict_from_proba(proba).tolist()
        labels = [str(label) for label in proba.columns]
        probabilities = [dict(zip(labels, map(float, row))) for row in proba.to_numpy().tolist()]
        return predictions, probabilities
    predicted = predictor.predict(frame)
    if predicted.ndim == 2:  # quantile regression: a column per level
        levels = [str(level) for level in predicted.columns]
        return [dict(zip(levels, map(float, row))) for row in predicted.to_numpy().tolist()], None
    return predicted.tolist(), None


def predictor_schema(folder: Path, *, reference_csv: Path | None = None) -> dict:
    """What the registry records at publish: the input columns with dtypes and seen categories, the input
    contract (from ``reference_csv`` when given, else from the training data the predictor kept), and more."""
    from autogluon.tabular import TabularPredictor

    root = predictor_root(folder)
    predictor = TabularPredictor.load(str(root), verbosity=0, require_version_match=False)
    dtypes = predictor.feature_metadata_in.type_map_raw
    categories = _category_maps(predictor._learner.feature_generator)
    features = []
    for name in predictor.original_features:
        feature = {"name": name, "dtype": dtypes.get(name, "object")}
        if name in categories:
            feature["categories"] = [_plain(value) for value in categories[name]]
        features.append(feature)
    saved_ag, saved_py = saved_versions(root)
    return {
        "label": predictor.label,
        "problem_type": predictor.problem_type,
        "eval_metric": predictor.eval_metric.name,
        "features": features,
        "class_labels": [_plain(c) for c in (predictor.class_labels or [])],
        "autogluon_version": saved_ag,
        "python_version": saved_py,
        "input_contract": _input_contract(predictor, reference_csv),
    }


def _input_contract(predictor, reference_csv: Path | None) -> dict:
    import pandas as pd

    features = list(predictor.original_features)
    if reference_csv is not None:
        try:
            reference = pd.read_csv(reference_csv)
        except (OSError, ValueError) as error:
            raise InvalidReference(f"cannot read the reference CSV {reference_csv}: {error}") from error
        absent = [name for name in features if name not in reference.columns]
        if absent:
            raise InvalidReference(f"the reference CSV {reference_csv} lacks the features {', '.join(absent)}")
        return contract.contract_describe(reference[features], source=f"reference CSV {Path(reference_csv).name}")
    try:
        # What AutoGluon kept of the training data (``cache_data=True``, its default). Numeric columns are
        # as given; a category column holds codes, which still tell how often it was missing.
        parts = [predictor.load_data_internal(data="train", return_y=False)]
        try:
            parts.append(predictor.load_data_internal(data="val", return_y=False))
        except Exception:  # noqa: BLE001 - no validation split was kept: the training split describes it
            pass
    except Exception:  # noqa: BLE001 - fit with cache_data=False: nothing to describe, nothing to check
        return {"source": "none", "rows": 0, "features": {}}
    frames = [part[0] if isinstance(part, tuple) else part for part in parts]
    frames = [frame for frame in frames if frame is not None]
    kept = pd.concat(frames)
    return contract.contract_describe(kept[[name for name in features if name in kept.columns]], source="training data")


def _category_maps(generator) -> dict:
    """Categories seen in training, from AutoGluon's CategoryFeatureGenerator(s) inside the pipeline."""
    found = dict(getattr(generator, "category_map", None) or {})
    for stage in getattr(generator, "generators", None) or []:
        for sub in stage if isinstance(stage, list) else [stage]:
            found.update(_category_maps(sub))
    return found


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def folder_bytes(root: Path) -> int:
    """Bytes of the files under ``root``: a predictor's unpacked size, and a fair proxy for its memory."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        total += sum(os.path.getsize(os.path.join(dirpath, name)) for name in filenames)
    return total
