"""What a publish records beyond the schema: AutoGluon's leaderboard and the publisher's feature importance.

AutoGluon is imported lazily, as in ``predictions.loaders``.
"""

import csv
import io
import json
import math
import reprlib
from pathlib import Path

from predictions.inputs import NUMBER_TEXT

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

    Every feature named must be one of the model's: a file from another model is refused, not shown. An
    importance is a finite number: a JSON number (not a boolean, nor text), or a CSV cell in decimal notation.
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
        raise InvalidImportance(f"{filename}: not features of this model: {', '.join(map(_shown, unknown[:10]))}")
    ranked = sorted(pairs, key=lambda pair: pair[1], reverse=True)
    return {"source": filename, "features": [{"feature": name, "importance": value} for name, value in ranked]}


def _importance_from_json(text: str, filename: str) -> list[tuple[str, float]]:
    try:
        loaded = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise InvalidImportance(f"{filename}: not JSON this server reads (nested too deeply)") from None
    except ValueError as error:  # huge integers included: int() refuses over 4,300 digits
        raise InvalidImportance(f"{filename}: not JSON ({error})") from None
    if isinstance(loaded, dict):
        items = list(loaded.items())
    elif isinstance(loaded, list) and all(isinstance(row, dict) for row in loaded):
        items = [(row.get("feature"), row.get("importance")) for row in loaded]
    else:
        raise InvalidImportance(f'{filename}: expected {{"feature": importance}} or [{{"feature", "importance"}}]')
    return [_pair(name, _json_number(value), value, filename) for name, value in items]


def _not_json(constant: str):
    # Python's json reads NaN and Infinity, which JSON itself does not have.
    raise ValueError(f"{constant} is not a JSON value")


def _json_number(value) -> float | None:
    # A JSON number, not a boolean (True is an int to Python) nor a string holding one, as the predict API.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits has no float
        return None


def _csv_number(cell: str | None) -> float | None:
    # As prediction inputs are read: not all that float() takes ("1_000", digits of other scripts).
    if cell is None or not NUMBER_TEXT.fullmatch(cell.strip()):
        return None
    return float(cell)


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
    pairs = []
    for row in rows[1:]:
        if row:
            value = _cell(row, value_at)
            pairs.append(_pair(_cell(row, name_at), _csv_number(value), value, filename))
    return pairs


def _cell(row: list[str], at: int) -> str | None:
    return row[at] if at < len(row) else None


def _pair(name, number: float | None, value, filename: str) -> tuple[str, float]:
    """``number`` is ``value`` read as the format's numbers are, None if it is not one."""
    if not isinstance(name, str) or not name:
        raise InvalidImportance(f"{filename}: a row has no feature name: {_shown(name)}")
    if number is None or not math.isfinite(number):
        raise InvalidImportance(
            f"{filename}: the importance of {_shown(name)} is not a finite number: {_shown(value)}"
        )
    return name, number


def _shown(value) -> str:
    return _SHOWN.repr(value)


# Messages repeat what was sent, cut short and a few levels deep: never a megabyte, never a RecursionError.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxlong = 80


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value
