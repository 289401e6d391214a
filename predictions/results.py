"""The one result table behind every tabular answer: the API's CSV, the web UI's table and download, jobs.

A result row is the row as it was sent (its cells untouched: ``3`` stays ``3``, text stays text), then the
prediction (one column per level for quantile models), one ``probability_<class>`` column per class in
the model's class order, and ``warnings``: what ``predictions.inputs`` noticed about that row.

Every CSV this module writes is safe to open in a spreadsheet: a text cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return would be run as a formula, so it gets a leading ``'``; numbers,
including negative ones, are written as numbers.
"""

import csv
import io
from collections.abc import Iterable, Iterator

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
WARNINGS_COLUMN = "warnings"


def prediction_column(columns: list[str], label: str) -> str:
    """The predictions' column: beside the input, never over one of its columns."""
    return "prediction" if "prediction" not in columns else f"predicted_{label}"


def result_header(*, columns: list[str], label: str, predictions: list, probabilities: list[dict] | None) -> list[str]:
    column = prediction_column(columns, label)
    if predictions and isinstance(predictions[0], dict):  # quantile levels
        outputs = [f"{column}_{level}" for level in predictions[0]]
    else:
        outputs = [column]
    classes = list(probabilities[0]) if probabilities else []
    return [*columns, *outputs, *(f"probability_{c}" for c in classes), WARNINGS_COLUMN]


def result_rows(*, cells: list[list], predictions: list, probabilities: list[dict] | None,
                row_warnings: list[list[str]]) -> Iterator[list]:
    """Each input row followed by its answer, in the order of ``result_header``."""
    for index, values in enumerate(cells):
        prediction = predictions[index]
        outputs = list(prediction.values()) if isinstance(prediction, dict) else [prediction]
        classes = list(probabilities[index].values()) if probabilities else []
        yield [*values, *outputs, *classes, "; ".join(row_warnings[index]) if row_warnings else ""]


def result_table(rows, result) -> tuple[list[str], list[list]]:
    """The header and rows for validated ``rows`` (``inputs.Rows``) and their ``PredictionResult``."""
    header = result_header(
        columns=rows.columns, label=result.version.label, predictions=result.predictions,
        probabilities=result.probabilities,
    )
    body = result_rows(
        cells=rows.cells, predictions=result.predictions, probabilities=result.probabilities,
        row_warnings=rows.row_warnings,
    )
    return header, list(body)


def csv_safe(value):
    """A cell as a spreadsheet should see it: formula-leading text neutralised, numbers left alone."""
    if not isinstance(value, str) or not value.startswith(FORMULA_LEADS):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def csv_lines(rows: Iterable[list]) -> Iterator[str]:
    """Each row as one CSV line, every cell made safe.

    Lines end in ``\\r\\n`` (RFC 4180): the writer quotes a cell holding any character of the line
    terminator, so with a bare ``\\n`` a carriage return inside a cell would go out unquoted and split the row.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_safe(value) for value in row])
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def csv_text(header: list[str], rows: Iterable[list]) -> str:
    return "".join(csv_lines([header, *rows]))
