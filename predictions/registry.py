"""What a publish records beyond the schema: AutoGluon's leaderboard and the publisher's feature importance.

AutoGluon is imported lazily, as in ``predictions.loaders``.
"""

import csv
import io
import json
import math
from pathlib import Path

# The leaderboard columns kept (AutoGluon names them so); the rest are internal bookkeeping.
LEADERBOARD_COLUMNS = ("model", "score_val", "eval_metric", "pred_time_val", "fit_time", "stack_level")
FEATURE_IMPORTANCE_MAX_FEATURES = 10_000
FEATURE_IMPORTANCE_MAX_BYTES = 4 * 1024 * 1024


class InvalidImportance(ValueError):
    """The feature importance given at publish cannot be read."""


def predictor_leaderboard(root: Path) -> list[dict]:
    """``predictor.leaderboard()`` as plain rows (no data: the validation scores AutoGluon kept at fit)."""
    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor.load(str(root), verbosity=0, require_version_match=False)
    board = predictor.leaderboard(silent=True)
    rows = []
    for record in board.to_dict(orient="records"):
        row = {column: _plain(record.get(column)) for column in LEADERBOARD_COLUMNS if column in record}
        row["best"] = row.get("model") == predictor.model_best
        rows.append(row)
    return rows


def feature_importance_parse(*, data: bytes, filename: str, features: list[str]) -> dict:
    """Importance per feature from a CSV (``feature,importance[,...]`` as ``predictor.feature_importance()``
    writes it with its index named) or JSON (``{feature: importance}`` or the same as records).

    Every feature named must be one of the model's: a file from another model is refused, not shown.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidImportance(f"{filename}: not UTF-8 text (byte {error.start})") from None
    if filename.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        pairs = _importance_from_json(text, filename)
    else:
        pairs = _importance_from_csv(text, filename)
    if not pairs:
        raise InvalidImportance(f"{filename}: no features in it")
    if len(pairs) > FEATURE_IMPORTANCE_MAX_FEATURES:
        raise InvalidImportance(f"{filename}: more than {FEATURE_IMPORTANCE_MAX_FEATURES} rows")
    unknown = [name for name, _ in pairs if name not in features]
    if unknown:
        raise InvalidImportance(f"{filename}: not features of this model: {', '.join(map(repr, unknown[:10]))}")
    ranked = sorted(pairs, key=lambda pair: pair[1], reverse=True)
    return {"source": filename, "features": [{"feature": name, "importance": value} for name, value in ranked]}


def _importance_from_json(text: str, filename: str) -> list[tuple[str, float]]:
    try:
        loaded = json.loads(text)
    except ValueError as error:
        raise InvalidImportance(f"{filename}: not JSON ({error})") from None
    if isinstance(loaded, dict):
        items = list(loaded.items())
    elif isinstance(loaded, list) and all(isinstance(row, dict) for row in loaded):
        items = [(row.get("feature"), row.get("importance")) for row in loaded]
    else:
        raise InvalidImportance(f'{filename}: expected {{"feature": importance}} or [{{"feature", "importance"}}]')
    return [_pair(name, value, filename) for name, value in items]


def _importance_from_csv(text: str, filename: str) -> list[tuple[str, float]]:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise InvalidImportance(f"{filename}: not a readable CSV ({error})") from None
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "importance" not in header:
        raise InvalidImportance(f"{filename}: the header has no 'importance' column")
    value_at = header.index("importance")
    # pandas writes the index (the feature) first, with an empty or "feature" heading.
    name_at = header.index("feature") if "feature" in header else 0
    return [_pair(row[name_at], row[value_at] if len(row) > value_at else None, filename) for row in rows[1:] if row]


def _pair(name, value, filename: str) -> tuple[str, float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidImportance(f"{filename}: the importance of {name!r} is not a number: {value!r}") from None
    if not math.isfinite(number) or not isinstance(name, str) or not name:
        raise InvalidImportance(f"{filename}: feature {name!r} has no usable importance ({value!r})")
    return name, number


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value
