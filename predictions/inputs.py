"""Turning untrusted rows (JSON objects or CSV) into a DataFrame the predictor can take, or a clear error.

Every error names where it is: ``instances[3].sqft`` for JSON, ``row 4, column sqft`` for CSV (rows counted
from 1 after the header). Nothing reaches AutoGluon that it could fail on with a traceback.
"""

import csv
import io
import math

from django.conf import settings

# LightGBM and friends work in 32-bit floats: a larger magnitude would silently become infinity.
FLOAT32_MAX = 3.4028234e38
NUMERIC_DTYPES = {"int", "float"}
MAX_ERRORS_REPORTED = 20


class InvalidInput(Exception):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


def rows_from_json(*, version, rows: list, where: str = "instances"):
    if not isinstance(rows, list) or not rows:
        raise InvalidInput({where: "must be a non-empty list of objects"})
    _check_row_count(len(rows), where=where)
    errors: dict[str, str] = {}
    clean_rows = []
    for index, row in enumerate(rows):
        prefix = f"{where}[{index}]" if where == "instances" else where
        if not isinstance(row, dict):
            errors[prefix] = "must be an object of feature values"
            continue
        clean_rows.append(_clean_row(version, row, lambda name, prefix=prefix: f"{prefix}.{name}", errors))
        if len(errors) >= MAX_ERRORS_REPORTED:
            break
    if errors:
        raise InvalidInput(errors)
    return _frame(version, clean_rows)


def rows_from_csv(*, version, data: bytes):
    if len(data) > settings.PREDICT_MAX_UPLOAD_BYTES:
        raise InvalidInput({"file": f"is {len(data)} bytes; the limit is {settings.PREDICT_MAX_UPLOAD_BYTES}"})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput({"file": f"is not UTF-8 text (byte {error.start})"}) from error
    if not text.strip():
        raise InvalidInput({"file": "is empty"})
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error) as error:
        raise InvalidInput({"file": f"has no readable header row ({error})"}) from error
    if len(set(header)) != len(header):
        raise InvalidInput({"header": "has duplicate column names"})
    errors: dict[str, str] = {}
    clean_rows = []
    try:
        for line_number, values in enumerate(reader, start=1):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                errors[f"row {line_number}"] = f"has {len(values)} values; the header has {len(header)} columns"
            else:
                raw = {name: _csv_value(version, name, value) for name, value in zip(header, values)}
                clean_rows.append(
                    _clean_row(version, raw, lambda name, n=line_number: f"row {n}, column {name}", errors)
                )
            if len(errors) >= MAX_ERRORS_REPORTED:
                break
            _check_row_count(len(clean_rows), where="file")
    except csv.Error as error:
        raise InvalidInput({"file": f"is not valid CSV ({error})"}) from error
    if errors:
        raise InvalidInput(errors)
    if not clean_rows:
        raise InvalidInput({"file": "has a header but no data rows"})
    return _frame(version, clean_rows)


def _check_row_count(count: int, *, where: str) -> None:
    if count > settings.PREDICT_MAX_ROWS:
        raise InvalidInput({where: f"has more than {settings.PREDICT_MAX_ROWS} rows, the limit per request"})


def _csv_value(version, name: str, value: str):
    """CSV cells are text: an empty cell is a missing value, numbers are parsed for numeric columns."""
    value = value.strip()
    if value == "":
        return None
    dtype = _dtypes(version).get(name)
    if dtype in NUMERIC_DTYPES:
        try:
            return float(value)
        except ValueError:
            return value  # reported by _clean_row as "must be a number"
    return value


def _clean_row(version, row: dict, field_name, errors: dict) -> dict:
    dtypes = _dtypes(version)
    for name in row:
        if name not in dtypes and name != version.label:
            errors[field_name(name)] = "is not a feature of this model"
    clean = {}
    for name, dtype in dtypes.items():
        if name not in row:
            errors[field_name(name)] = "is missing"
            continue
        value = row[name]
        problem = _problem(dtype, value)
        if problem:
            errors[field_name(name)] = problem
        clean[name] = value
    return clean


def _problem(dtype: str, value) -> str | None:
    if value is None:
        return None  # a missing value: AutoGluon imputes it as it did in training
    if dtype in NUMERIC_DTYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {type(value).__name__} {str(value)[:40]!r}"
        if not math.isfinite(value):
            return "must be a finite number (NaN and infinity are not allowed)"
        if abs(value) > FLOAT32_MAX:
            return f"is out of range (|value| must be at most {FLOAT32_MAX:.3g})"
        return None
    if dtype == "bool":
        return None if isinstance(value, bool) or value in ("true", "false", "True", "False", 0, 1) else (
            "must be true or false"
        )
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return f"must be a string, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite value"
    return None


def _dtypes(version) -> dict[str, str]:
    return {feature["name"]: feature["dtype"] for feature in version.features}


def _frame(version, rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=version.feature_names)
    for feature in version.features:
        name = feature["name"]
        column = frame[name]
        if feature["dtype"] in NUMERIC_DTYPES:
            if column.dtype == object:  # a missing value among numbers, or numbers parsed from CSV text
                frame[name] = pd.to_numeric(column, errors="coerce")
        elif feature["dtype"] in ("object", "category"):
            # Numbers sent for a categorical column name its categories, as the training data did.
            if any(not isinstance(value, str) for value in column.dropna()):
                frame[name] = column.where(column.isna(), column.astype(str))
    return frame
