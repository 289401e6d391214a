"""Turning untrusted rows (JSON objects or CSV) into a DataFrame the predictor can take, or a clear refusal.

Every error names where it is: ``instances[3].sqft`` for JSON, ``row 4, column sqft`` for CSV (records
counted from 1 after the header). Nothing reaches AutoGluon that it could fail on with a traceback, and
nothing is guessed in silence: values the model would take but did not see in training (a number out of
its range, a category it does not know, under a "warn" policy) come back as warnings, and missing values
the model fills in are named per row. What a model saw is its version's input contract
(``predictions.contract``), recorded at publish.

Error lists are bounded (``MAX_ERRORS`` overall, ``MAX_ERRORS_PER_ROW`` per row, long names cut) with a
count of the rest, so a hostile row cannot make a megabyte-sized answer.
"""

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings

from predictions import contract

# LightGBM and friends work in 32-bit floats: a larger magnitude would silently become infinity.
FLOAT32_MAX = 3.4028234e38
NUMERIC_DTYPES = {"int", "float"}
MAX_ERRORS = 20
MAX_ERRORS_PER_ROW = 10
MAX_WARNINGS = 100
MAX_NAME_CHARS = 64
QUOTE = '"'
# A quoted cell's text in a record's raw line(s): quotes inside it are doubled.
QUOTED_CELL = re.compile(r'"((?:[^"]|"")*)"')
# Bytes that are not UTF-8 are decoded to these (``surrogateescape``), so the record holding one is named.
UNDECODABLE = re.compile("[\udc80-\udcff]")
# A number as spreadsheets and CSV readers write one: ASCII digits, a sign, a point, an exponent. Python's
# float() takes more ("1_800", digits of other scripts), which no CSV reader takes for a number.
NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
INTEGER_TEXT = re.compile(r"[+-]?\d+", re.ASCII)
NON_FINITE_TEXT = {"nan", "inf", "infinity"}
# A number written past every range checked here stands as this, which the range check refuses saying why:
# int() refuses text over 4,300 digits, and float() reads "1e999" as infinity, which was not what was sent.
OUT_OF_RANGE = 1e40
INTEGER_MAX_DIGITS = 39  # FLOAT32_MAX has 39 digits: a longer integer is out of range


class InvalidInput(Exception):
    """Input refused: ``errors`` maps where (field, row) to what is wrong; ``omitted`` counts the rest."""

    def __init__(self, errors: dict[str, str], *, omitted: int = 0):
        self.errors = errors
        self.omitted = omitted
        super().__init__("; ".join(f"{where}: {message}" for where, message in errors.items()))


class _Errors:
    """The first errors of a request, bounded overall and per row; the rest only counted."""

    def __init__(self):
        self.found: dict[str, str] = {}
        self.omitted = 0
        self._row_count = 0

    def new_row(self) -> None:
        self._row_count = 0

    def add(self, where: str, message: str) -> None:
        if len(self.found) >= MAX_ERRORS or self._row_count >= MAX_ERRORS_PER_ROW:
            self.omitted += 1
            return
        self._row_count += 1
        self.found[where] = message

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidInput(self.found, omitted=self.omitted)


class Columns:
    """Validated feature columns as typed arrays in the predictor's order: the frame ``_frame_general`` would
    make, not made yet. Building a DataFrame costs more than a one-row request's share of a batched predict,
    so concurrent requests' columns are joined and made one frame per predict call (``predictions.batching``)."""

    __slots__ = ("names", "arrays")

    def __init__(self, names: list[str], arrays: list):
        self.names = names
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    @property
    def dtypes(self) -> tuple[str, ...]:
        """As ``str`` of the frame's column dtypes: "float64", "int64", "object"."""
        return tuple(str(array.dtype) for array in self.arrays)

    def frame(self):
        import pandas as pd

        # The arrays are new and the frame's alone: not copying them (nor consolidating into blocks) is the
        # larger part of what building a small frame costs.
        return pd.DataFrame(dict(zip(self.names, self.arrays)), copy=False)

    @classmethod
    def joined(cls, parts: list["Columns"]) -> "Columns":
        """Several requests' rows, in order; their dtypes must be equal (then no value or type changes)."""
        import numpy as np

        return cls(parts[0].names, [np.concatenate(column) for column in zip(*(part.arrays for part in parts))])


def frame_of(features):
    """A DataFrame of ``Rows.features``: ``Columns`` made one, or the DataFrame itself."""
    return features.frame() if isinstance(features, Columns) else features


def dtypes_of(features) -> tuple[str, ...]:
    """``Rows.features``' column dtypes as text ("float64", "int64", "object"), without making a frame."""
    return features.dtypes if isinstance(features, Columns) else tuple(map(str, features.dtypes))


def frame_joined(parts: list):
    """One frame of several ``Rows.features`` with equal dtypes, rows in order: joined arrays made one frame
    when all are ``Columns``, else the frames concatenated."""
    if all(isinstance(part, Columns) for part in parts):
        return Columns.joined(parts).frame()
    import pandas as pd

    return pd.concat([frame_of(part) for part in parts], ignore_index=True)


@dataclass
class Rows:
    """Validated rows: what the predictor gets, what the client sent, and what the client should know."""

    features: object  # Columns (plain values, the usual case) or a pandas.DataFrame, in the predictor's order
    columns: list[str]  # the columns as sent: the CSV header, or the features for JSON
    cells: list[list]  # each row's values as sent, in ``columns`` order (CSV text, JSON values)
    numbers: list[int]  # how errors and warnings number each row: ``instances`` index or CSV row
    missing: list[list[str]] = field(default_factory=list)  # per row, the features the model filled in
    warnings: list[dict] = field(default_factory=list)  # {"row", "field", "value", "message"}, the first ones
    warnings_omitted: int = 0
    row_warnings: list[list[str]] = field(default_factory=list)  # per row, every warning: "field: message"


class _Warnings:
    """The first warnings of a request in full (for JSON), and every warning as text per row (for CSV)."""

    def __init__(self):
        self.found: list[dict] = []
        self.omitted = 0
        self.per_row: list[list[str]] = []

    def new_row(self) -> None:
        self.per_row.append([])

    def add(self, row: int, name: str | None, value, message: str) -> None:
        self.per_row[-1].append(f"{name}: {message}" if name else message)
        if len(self.found) >= MAX_WARNINGS:
            self.omitted += 1
            return
        self.found.append({"row": row, "field": name, "value": _shown(value), "message": message})


def rows_from_json(*, version, rows: list, where: str = "instances") -> Rows:
    if not isinstance(rows, list) or not rows:
        raise InvalidInput({where: "must be a non-empty list of objects"})
    _check_row_count(len(rows), where=where)
    checker = _RowChecker(version)
    cells = []
    for index, row in enumerate(rows):
        prefix = f"{where}[{index}]" if where == "instances" else where
        checker.errors.new_row()
        if not isinstance(row, dict):
            checker.errors.add(prefix, "must be an object of feature values")
            continue
        for name in row:
            if name not in checker.features and name != version.label:
                checker.errors.add(f"{prefix}.{_short(name)}", "is not a feature of this model")
        values = []
        for name in checker.features:
            if name not in row:
                checker.errors.add(f"{prefix}.{name}", "is missing (send null for a missing value)")
                values.append(None)
            else:
                values.append(row[name])
        checker.check(index, values, where=lambda name, prefix=prefix: f"{prefix}.{name}")
        cells.append(values)
    checker.errors.raise_if_any()
    return checker.rows(columns=list(checker.features), cells=cells, typed=cells, numbers=list(range(len(cells))))


def rows_from_csv(*, version, data, first_row: int = 0) -> Rows:
    """Rows from a CSV (``bytes``, an upload or a binary file), read as it is parsed; ``first_row`` is how
    many records came before them (a job's chunk)."""
    text = csv_text_stream(data, limit=settings.PREDICT_MAX_UPLOAD_BYTES, what="a request")
    records = CSVRecords(text, first_row=first_row)
    return rows_from_records(version=version, header=records.header, records=records)


def csv_text_stream(data, *, limit: int, what: str) -> io.TextIOWrapper:
    """A CSV as text (UTF-8, BOM dropped), decoded as it is read: a big upload is never in memory twice.

    ``data``: bytes, a Django upload (spooled to a temporary file past ``FILE_UPLOAD_MAX_MEMORY_SIZE``, or
    held in memory below it) or an open binary file. Larger than ``limit`` bytes: refused unread.
    """
    if isinstance(data, bytes | bytearray):
        size, raw = len(data), io.BytesIO(data)
    elif hasattr(data, "temporary_file_path"):
        size, raw = data.size, open(data.temporary_file_path(), "rb")  # noqa: SIM115 - closed with the wrapper
    elif hasattr(data, "file") and hasattr(data, "size"):
        data.file.seek(0)
        size, raw = data.size, data.file
    else:
        size, raw = os.fstat(data.fileno()).st_size, data
    if size > limit:
        raise InvalidInput({"file": f"is {size} bytes; the limit for {what} is {limit}"})
    # newline="" as the csv module wants: quoted line breaks stay inside their cell. Bytes that are not UTF-8
    # are kept as surrogates for ``CSVRecords`` to refuse: decoding runs ahead of the records, so a decoding
    # error would name a row before the one at fault.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def rows_from_records(*, version, header: list[str], records: Iterable[tuple[int, list[str]]]) -> Rows:
    """Rows from CSV records already read (``CSVRecords``): numbered cells under ``header``."""
    checker, cells, typed_rows, numbers = _records_checked(version, header, records)
    return checker.rows(columns=header, cells=cells, typed=typed_rows, numbers=numbers)


def records_validate(*, version, header: list[str], records: Iterable[tuple[int, list[str]]]) -> None:
    """Raise ``InvalidInput`` as ``rows_from_records`` would, without building the frame (a job's upload is
    checked whole when it is submitted, and predicted chunk by chunk later)."""
    _records_checked(version, header, records)


def _records_checked(version, header: list[str], records: Iterable[tuple[int, list[str]]]):
    checker = _RowChecker(version)
    unknown = [name for name in header if name not in checker.features and name != version.label]
    absent = [name for name in checker.features if name not in header]
    for name in unknown[:MAX_ERRORS_PER_ROW]:
        checker.errors.add(f"column {_short(name)}", "is not a feature of this model")
    for name in absent:
        checker.errors.add(f"column {name}", "is missing from the header (leave its cells empty for missing values)")
    checker.errors.raise_if_any()
    positions = [header.index(name) for name in checker.features]
    cells, typed_rows, numbers = [], [], []
    for number, values in records:
        _check_row_count(len(cells) + 1, where="file")
        checker.errors.new_row()
        typed = [_csv_value(checker.features[name], values[at]) for name, at in zip(checker.features, positions)]
        checker.check(number, typed, where=lambda name, n=number: f"row {n}, column {name}")
        cells.append(values)
        typed_rows.append(typed)
        numbers.append(number)
    checker.errors.raise_if_any()
    if not cells:
        raise InvalidInput({"file": "has a header but no data rows"})
    return checker, cells, typed_rows, numbers


class CSVRecords:
    """A CSV's header and records, strictly: what a spreadsheet would read, or an error naming the row.

    Python's ``csv`` module is lenient: an unclosed quote swallows every following line into one cell and a
    quote inside an unquoted cell is kept as text, so rows vanish without a word. Here the reader runs in
    strict mode and each record's raw text is kept to tell a quoted cell from a stray quote; every record
    must have the header's number of cells. Records are numbered from 1 after the header, an empty line
    counts as a record and is skipped (so numbers match the file), and whitespace around cells is kept for
    the caller to judge.
    """

    def __init__(self, stream: Iterable[str], *, first_row: int = 0):
        self._raw: list[str] = []
        self._reader = csv.reader(self._tap(stream), strict=True)
        self.number = first_row  # the last record read
        try:
            header = next(self._reader)
        except StopIteration:
            raise InvalidInput({"file": "is empty"}) from None
        except csv.Error as error:
            raise InvalidInput({"file": f"has no readable header row ({error})"}) from error
        self._check_record(header, where="header")
        self.header = [name.strip() for name in header]
        if not any(self.header):
            raise InvalidInput({"file": "has no readable header row"})
        if len(set(self.header)) != len(self.header):
            repeated = sorted(name for name, count in Counter(self.header).items() if count > 1)
            shown = ", ".join(repr(_short(name)) for name in repeated[:MAX_ERRORS_PER_ROW])
            raise InvalidInput({"header": f"has duplicate column names: {shown}"})

    def _tap(self, stream: Iterable[str]) -> Iterator[str]:
        # csv pulls a line only when the record goes on, so the lines taken since the last record are its text.
        for line in stream:
            self._raw.append(line)
            yield line

    def _check_record(self, values: list[str], *, where: str, names: list[str] | None = None) -> None:
        raw = "".join(self._raw)
        self._raw.clear()
        if UNDECODABLE.search(raw):
            at = next((i for i, value in enumerate(values) if UNDECODABLE.search(value)), None)
            cell = f" (column {_short(names[at])})" if names and at is not None and at < len(names) else ""
            raise InvalidInput({where: f"is not UTF-8 text{cell}: save the file as UTF-8"})
        with_quotes = [value for value in values if QUOTE in value]
        if not with_quotes:
            return
        # One pass over the record, not one per cell: a row of many quoted cells stays linear.
        quoted = {match[1].replace(QUOTE * 2, QUOTE) for match in QUOTED_CELL.finditer(raw)}
        for value in with_quotes:
            if value not in quoted:
                raise InvalidInput(
                    {where: f"has a stray quote in the cell {_shown(value)!r}: quote the whole cell and double "
                            'the quotes inside it ("like ""this""")'}
                )

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        while True:
            where = f"row {self.number + 1}"
            try:
                values = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                reason = "has a quote that is never closed" if "end of data" in str(error) else f"is not valid CSV ({error})"
                raise InvalidInput({where: reason}) from error
            self.number += 1
            self._check_record(values, where=where, names=self.header)
            if not values:
                continue
            if len(values) != len(self.header):
                raise InvalidInput(
                    {where: f"has {len(values)} cells; the header has {len(self.header)} columns"}
                )
            yield self.number, values


class _RowChecker:
    """Checks each row's values against the version's schema and input contract."""

    def __init__(self, version):
        self.version = version
        self.features = {feature["name"]: feature for feature in version.features}
        self.contract = contract.InputContract.of(version)
        self.errors = _Errors()
        self.warnings = _Warnings()
        self.missing: list[list[str]] = []

    def check(self, number: int, values: list, *, where) -> None:
        """``values`` in feature order; errors and warnings are recorded, and missing features per row."""
        self.warnings.new_row()
        missing = []
        for (name, feature), value in zip(self.features.items(), values):
            if value is None:
                missing.append(name)
                continue
            problem = _type_problem(feature["dtype"], value)
            if problem:
                self.errors.add(where(name), problem)
                continue
            verdict = self.contract.check(feature, value)
            if verdict.error:
                self.errors.add(where(name), verdict.error)
            elif verdict.warning:
                self.warnings.add(number, name, value, verdict.warning)
        if len(missing) == len(self.features):
            self.warnings.add(number, None, None, contract.ALL_MISSING)
        self.missing.append(missing)

    def rows(self, *, columns, cells, typed, numbers) -> Rows:
        """``typed``: each row's feature values in feature order, as checked."""
        return Rows(
            features=_features(self.version, typed),
            columns=columns,
            cells=cells,
            numbers=numbers,
            missing=self.missing,
            warnings=self.warnings.found,
            warnings_omitted=self.warnings.omitted,
            row_warnings=self.warnings.per_row,
        )


def _check_row_count(count: int, *, where: str) -> None:
    if count > settings.PREDICT_MAX_ROWS:
        raise InvalidInput({where: f"has more than {settings.PREDICT_MAX_ROWS} rows, the limit per request"})


def _csv_value(feature: dict, value: str):
    """CSV cells are text: an empty cell is a missing value, numbers are parsed for numeric columns."""
    value = value.strip()
    if value == "":
        return None
    if feature["dtype"] in NUMERIC_DTYPES:
        number = number_from_text(value, integer=feature["dtype"] == "int")
        return value if number is None else number  # text is reported as "must be a number"
    return value


def number_from_text(text: str, *, integer: bool) -> int | float | None:
    """The number ``text`` writes (an int for whole digits when ``integer``), or None if it writes none.

    NaN and infinity are numbers here: the checks refuse them later with the message the API gives.
    """
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    if integer and INTEGER_TEXT.fullmatch(text):
        if len(text.lstrip("+-").lstrip("0")) > INTEGER_MAX_DIGITS:
            return sign * OUT_OF_RANGE
        return int(text)
    if NUMBER_TEXT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else sign * OUT_OF_RANGE
    if text.lower().lstrip("+-") in NON_FINITE_TEXT:
        return float(text)
    return None


def _type_problem(dtype: str, value) -> str | None:
    if dtype in NUMERIC_DTYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {type(value).__name__} {_shown(value)!r}"
        # Compared before any float conversion: an integer of hundreds of digits has no float.
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number (NaN and infinity are not allowed)"
        if abs(value) > FLOAT32_MAX:
            return f"is out of range (|value| must be at most {FLOAT32_MAX:.3g})"
        # AutoGluon casts an integer feature to int64: past it the value wraps round, a silent wrong answer.
        if dtype == "int" and abs(value) > INT64_MAX:
            return "is out of range for an integer feature (|value| must be below 2**63)"
        if dtype == "int" and isinstance(value, float) and not value.is_integer():
            return f"must be a whole number: the model was trained on integers, got {value!r}"
        return None
    if dtype == "bool":
        return None if isinstance(value, bool) or value in ("true", "false", "True", "False", 0, 1) else (
            "must be true or false"
        )
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return f"must be a string, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite value"
    if isinstance(value, int) and abs(value) > FLOAT32_MAX:
        return "is out of range for a category (send it as a string)"
    return None


def _short(name) -> str:
    name = str(name)
    return name if len(name) <= MAX_NAME_CHARS else f"{name[: MAX_NAME_CHARS - 1]}…"


def _shown(value):
    """A value as a warning or error repeats it: long text cut, so answers stay small."""
    if isinstance(value, str) and len(value) > 80:
        return f"{value[:79]}…"
    return value


INT64_MAX = 2**63 - 1


def _integers(numbers):
    """int64 as in training where every value fits; float64 (as pandas itself would) with a gap or a giant."""
    if numbers.notna().all() and numbers.abs().max() <= INT64_MAX:
        return numbers.astype("int64")
    return numbers.astype("float64")


def _features(version, rows: list[list]):
    """The rows as ``TabularPredictor.predict`` would be given them by hand: columns typed as in training
    (floats as float64, integers as int64 unless a value is missing, categories as text). ``Columns`` when
    every value is plain, else the DataFrame the general conversion makes."""
    if not rows or not version.features:
        return _frame_general(version, rows)
    arrays = []
    for feature, values in zip(version.features, zip(*rows)):
        column = _column_plain(feature["dtype"], values)
        if column is None:
            return _frame_general(version, rows)
        arrays.append(column)
    return Columns(version.feature_names, arrays)


# Integers that float64 holds exactly: within it, converting an int column to float cannot round.
FLOAT64_EXACT_INT = 2**53


def _column_plain(dtype: str, values: tuple):
    """One column as the array ``_frame_general`` would make of it, built directly for the plain cases every
    ordinary request is (one DataFrame built once instead of a conversion per column); None for anything
    else, which ``_frame_general`` handles (its result is the reference: tests compare the two)."""
    import numpy as np

    if dtype == "float":
        if all(value is None or type(value) is float or (type(value) is int and abs(value) <= FLOAT64_EXACT_INT)
               for value in values):
            return np.array([math.nan if value is None else value for value in values], dtype="float64")
    elif dtype == "int":
        if all(type(value) is int and abs(value) <= INT64_MAX for value in values):
            return np.array(values, dtype="int64")
    elif dtype in ("object", "category"):
        if all(value is None or type(value) is str for value in values):
            return np.array(values, dtype=object)
    return None


def _frame_general(version, rows: list[list]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=version.feature_names)
    for feature in version.features:
        name = feature["name"]
        column = frame[name]
        if feature["dtype"] == "float":
            frame[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif feature["dtype"] == "int":
            frame[name] = _integers(pd.to_numeric(column, errors="coerce"))
        elif feature["dtype"] in ("object", "category"):
            # Numbers sent for a categorical column name its categories, as the training data did.
            if any(not isinstance(value, str) for value in column.dropna()):
                frame[name] = column.where(column.isna(), column.astype(str))
    return frame
