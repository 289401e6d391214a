"""A version's input contract: what the model saw in training, recorded at publish, checked on every row.

Recorded (``ModelVersion.input_contract``): the number of rows described and, per feature, the smallest
and largest number seen and the share of missing values. The categories a model knows are the ones
AutoGluon's own feature generator kept (``ModelVersion.features[...]["categories"]``): a value outside
them reaches the model as a missing value. Integer columns are the features of dtype ``int``.

Checked (``InputContract.check``), per value:
- a category the model does not know is refused (400 naming the closest known values) or, under the
  model's ``warn`` policy, accepted with a warning that the model treats it as missing;
- a number outside the training range is accepted with a warning: trees extrapolate flat, and the
  caller should know the answer rests on the edge of what the model has seen;
- a fraction for an integer column is refused in ``predictions.inputs``, with the other type checks.
"""

import difflib
import math
from dataclasses import dataclass

ALL_MISSING = "every feature is missing: the model fills all of them in, so the answer does not depend on this row"
REFUSE = "refuse"
WARN = "warn"


@dataclass(frozen=True)
class Verdict:
    error: str | None = None
    warning: str | None = None


ACCEPTED = Verdict()


def contract_describe(frame, *, source: str) -> dict:
    """The contract of a training (or reference) table: its row count and per-column ranges and gaps."""
    import pandas as pd

    described = {}
    for name in frame.columns:
        column = frame[name]
        entry = {"missing_rate": round(float(column.isna().mean()), 6) if len(column) else 0.0}
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            present = column.dropna()
            if len(present):
                entry["min"] = _plain(present.min())
                entry["max"] = _plain(present.max())
        described[str(name)] = entry
    return {"source": source, "rows": int(len(frame)), "features": described}


class InputContract:
    """The checks one request applies; built per request from the version (and its model's policy)."""

    def __init__(self, *, described: dict, policy: str):
        self.described = described
        self.policy = policy
        self._known: dict[str, dict[str, str]] = {}

    @classmethod
    def of(cls, version) -> "InputContract":
        return cls(
            described=(version.input_contract or {}).get("features", {}),
            policy=getattr(version.model, "unseen_categories", REFUSE),
        )

    def check(self, feature: dict, value) -> Verdict:
        if feature.get("categories") and feature["dtype"] in ("object", "category"):
            return self._check_category(feature, value)
        stats = self.described.get(feature["name"])
        if stats and "min" in stats and isinstance(value, int | float) and not isinstance(value, bool):
            if value < stats["min"]:
                return Verdict(warning=f"is below the smallest value seen in training ({_number(stats['min'])})")
            if value > stats["max"]:
                return Verdict(warning=f"is above the largest value seen in training ({_number(stats['max'])})")
        return ACCEPTED

    def _check_category(self, feature: dict, value) -> Verdict:
        known = self._known.get(feature["name"])
        if known is None:
            # Folded -> as recorded, for "did you mean" (first spelling wins on a fold collision).
            known = {}
            for category in feature["categories"]:
                known.setdefault(str(category), str(category))
            self._known[feature["name"]] = known
        text = str(value)
        if text in known:
            return ACCEPTED
        message = f"{text[:80]!r} is not a category seen in training ({_suggest(text, list(known))})"
        if self.policy == WARN:
            return Verdict(warning=f"{message}; the model treats it as missing")
        return Verdict(error=message)


def _suggest(text: str, known: list[str]) -> str:
    folded = text.strip().casefold()
    same = [category for category in known if category.strip().casefold() == folded]
    if same:
        return "did you mean " + " or ".join(repr(category) for category in same[:3]) + "?"
    by_fold = {category.casefold(): category for category in known}
    close = difflib.get_close_matches(folded, list(by_fold), n=3, cutoff=0.6) if len(folded) <= 200 else []
    if close:
        return "closest: " + ", ".join(repr(by_fold[c]) for c in close)
    shown = ", ".join(repr(category) for category in known[:8])
    return f"known: {shown}{', …' if len(known) > 8 else ''}"


def _number(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 else repr(value)


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
