"""Micro-batching: concurrent requests for one model share predict calls, and each still gets exactly
AutoGluon's own answer for its rows, for every problem type (compare tests/predictions/test_parity.py)."""

import pytest

from predictions import batching, inputs
from predictions.services import prediction_run
from tests.predictions.test_lookups_and_logs import buffered  # noqa: F401 - a fixture: threads log as servers do
from tests.predictions.test_parity import CASES, Case
from tests.processes import in_threads

THREADS = 24


@pytest.fixture(params=list(CASES))
def case(request, db, buffered):  # noqa: F811
    return Case(request, request.param)


def _frames(case, records):
    return [inputs.rows_from_json(version=case.version, rows=rows).features for rows in records]


def _run_together(case, frames) -> list:
    """Each frame predicted by one of THREADS threads, all released at once; answers in the frames' order."""
    answers: list = [None] * len(frames)
    offsets = iter(range(THREADS))  # next() on it is atomic under the GIL: each thread takes its own

    def task():
        offset = next(offsets)
        for index in range(offset, len(frames), THREADS):
            result = prediction_run(version=case.version, frame=frames[index])
            answers[index] = (result.predictions, result.probabilities)

    in_threads(THREADS, task)
    return answers


def test_concurrent_one_row_requests_get_their_own_exact_answers(case, settings):
    settings.PREDICT_BATCH_MAX_WAIT_MS = 5.0  # generous, so batches surely form on a loaded machine
    records = case.records()
    prediction_run(version=case.version, frame=_frames(case, [records[:1]])[0])  # in memory first
    before = dict(batching.shared_calls)
    answers = _run_together(case, _frames(case, [[record] for record in records]))
    for index, (predictions, probabilities) in enumerate(answers):
        assert predictions == [case.predictions[index]], f"row {index}"
        assert probabilities == (None if case.probabilities is None else [case.probabilities[index]]), f"row {index}"
    assert batching.shared_calls["requests"] > before["requests"]  # calls really were shared
    assert batching.shared_calls["largest"] > 1


def test_requests_of_several_rows_and_other_dtypes_are_split_exactly(case, settings):
    """Requests of 1 to 5 rows, some with a value missing (an integer column then arrives as float64):
    joined only with frames of the same dtypes, and split back at the right offsets."""
    settings.PREDICT_BATCH_MAX_WAIT_MS = 5.0
    settings.PREDICT_BATCH_MAX_ROWS = 16
    records = case.records()
    numeric = next(f["name"] for f in case.version.features if f["dtype"] in ("int", "float"))
    chunks, expected, start = [], [], 0
    while start < len(records):
        size = 1 + len(chunks) % 5
        chunk = [dict(r) for r in records[start:start + size]]
        if len(chunks) % 3 == 0:
            chunk[0][numeric] = None  # the model fills it in: AutoGluon's answer for that row changes too
        chunks.append(chunk)
        start += size
    import pandas as pd

    full = pd.concat([inputs.frame_of(features) for features in _frames(case, chunks)], ignore_index=True)
    predictor = case.predictor
    plain = predictor.predict(full)
    prediction_run(version=case.version, frame=_frames(case, chunks[:1])[0])
    answers = _run_together(case, _frames(case, chunks))
    offset = 0
    for chunk, (predictions, probabilities) in zip(chunks, answers):
        frame = full.iloc[offset:offset + len(chunk)]
        alone = predictor.predict(frame)
        if alone.ndim == 2:
            assert predictions == [{str(k): float(v) for k, v in zip(alone.columns, row)} for row in alone.to_numpy().tolist()]
        else:
            assert predictions == alone.tolist() == plain.iloc[offset:offset + len(chunk)].tolist()
        if probabilities is not None:
            proba = predictor.predict_proba(frame)
            assert probabilities == [{str(c): float(p) for c, p in zip(proba.columns, row)} for row in proba.to_numpy().tolist()]
        offset += len(chunk)


def test_one_client_predicts_alone(case):
    frames = _frames(case, [[record] for record in case.records()[:10]])
    before = dict(batching.shared_calls)
    for index, frame in enumerate(frames):
        assert prediction_run(version=case.version, frame=frame).predictions == [case.predictions[index]]
    assert batching.shared_calls["requests"] == before["requests"]
