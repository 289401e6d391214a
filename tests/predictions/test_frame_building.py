"""The DataFrame a request's rows become: built directly for plain rows, identical to the general conversion.

``inputs._features`` builds each column's array at once when every value is plain (floats, small integers,
text, missing) and keeps them as ``Columns``; ``inputs._frame_general`` converts column by column and
handles everything. Whatever the path, the predictor must get the same frame, dtypes included: compared here
exactly, on rows drawn at random from values either path may see. Batched requests' columns are joined
before one frame is made of them: that frame must equal the requests' own frames concatenated.
"""

import random
from types import SimpleNamespace

import pandas as pd
import pytest

from predictions import inputs

FEATURES = [
    {"name": "sqft", "dtype": "float"},
    {"name": "bedrooms", "dtype": "int"},
    {"name": "city", "dtype": "object"},
    {"name": "grade", "dtype": "category"},
    {"name": "garden", "dtype": "bool"},
]

VALUES = {
    "float": [None, 0, 1, -7, 1200, 2.5, -0.0, 1e-300, 3.4e38, 2**53, 2**53 + 1, -(2**60), 10**30],
    "int": [None, 0, 3, -4, 2**62, 2**63 - 1, 2**63, -(2**63), 3.0, 1e18, 10**30],
    "object": [None, "boston", "", "Δ city", 12, 3.5],
    "category": [None, "a", "b", 7],
    "bool": [None, True, False, "true", 0, 1],
}


PLAIN = {
    "float": lambda value: value is None or type(value) is float or (type(value) is int and abs(value) <= 2**53),
    "int": lambda value: type(value) is int and abs(value) < 2**63,
    "object": lambda value: value is None or type(value) is str,
    "category": lambda value: value is None or type(value) is str,
}


@pytest.mark.parametrize("plain", [True, False], ids=["plain values", "any values"])
@pytest.mark.parametrize("seed", range(30))
def test_frame_equals_the_general_conversion_on_random_rows(seed, plain):
    draw = random.Random(seed)
    features = FEATURES[:4] if plain else FEATURES  # no plain path for bool columns
    version = SimpleNamespace(features=features, feature_names=[feature["name"] for feature in features])
    choices = {feature["name"]: [value for value in VALUES[feature["dtype"]]
                                 if not plain or PLAIN[feature["dtype"]](value)] for feature in features}
    rows = [[draw.choice(choices[name]) for name in choices] for _ in range(draw.randint(1, 6))]
    if plain:
        assert all(inputs._column_plain(feature["dtype"], values) is not None
                   for feature, values in zip(features, zip(*rows)))
    built = inputs.frame_of(inputs._features(version, rows))
    pd.testing.assert_frame_equal(built, inputs._frame_general(version, rows), check_exact=True)


def test_plain_rows_take_the_direct_path_and_still_equal_the_general_conversion():
    plain = SimpleNamespace(features=FEATURES[:4], feature_names=[feature["name"] for feature in FEATURES[:4]])
    rows = [[1200, 3, "boston", "a"], [2.5, 2**62, None, None], [None, -4, "", "b"]]
    for feature, values in zip(plain.features, zip(*rows)):
        assert inputs._column_plain(feature["dtype"], values) is not None, feature
    features = inputs._features(plain, rows)
    assert isinstance(features, inputs.Columns)
    built = features.frame()
    pd.testing.assert_frame_equal(built, inputs._frame_general(plain, rows), check_exact=True)
    assert [str(dtype) for dtype in built.dtypes] == ["float64", "int64", "object", "object"]
    assert built["city"].tolist() == ["boston", None, ""]


def test_values_outside_the_plain_cases_fall_back_to_the_general_conversion():
    assert inputs._column_plain("int", (3, None)) is None  # a gap makes the column float64
    assert inputs._column_plain("int", (3.0,)) is None
    assert inputs._column_plain("float", (2**53 + 1,)) is None  # would round: pandas decides
    assert inputs._column_plain("object", ("a", 12)) is None  # a number names a category as text
    assert inputs._column_plain("bool", (True,)) is None


@pytest.mark.parametrize("seed", range(20))
def test_joined_columns_make_the_frame_the_requests_frames_concatenated_make(seed):
    draw = random.Random(seed)
    plain = SimpleNamespace(features=FEATURES[:4], feature_names=[feature["name"] for feature in FEATURES[:4]])
    choices = [[value for value in VALUES[feature["dtype"]] if PLAIN[feature["dtype"]](value)]
               for feature in plain.features]
    # Requests whose dtypes agree, as a batch's do: no gaps in the integer column.
    choices[1] = [value for value in choices[1] if value is not None]
    requests = [inputs._features(plain, [[draw.choice(values) for values in choices]
                                         for _ in range(draw.randint(1, 4))])
                for _ in range(draw.randint(2, 6))]
    joined = inputs.Columns.joined(requests)
    assert len(joined) == sum(len(request) for request in requests)
    expected = pd.concat([request.frame() for request in requests], ignore_index=True)
    pd.testing.assert_frame_equal(joined.frame(), expected, check_exact=True)
