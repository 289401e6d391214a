"""Micro-batching: concurrent requests for one model share predict calls, and each still gets exactly
AutoGluon's own answer for its rows, for every problem type (compare tests/predictions/test_parity.py)."""

import threading
import time

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


@pytest.fixture
def regression(request, db, buffered):  # noqa: F811
    return Case(request, "regression")


def _at_work(task):
    """``task()`` as a server thread runs a request: counted at work from begin to finish."""
    def run():
        batching.work_begin()
        try:
            return task()
        finally:
            batching.work_end()
    return run


def _server_thread(task) -> threading.Thread:
    """A thread running ``task`` as a request, with its own database connection, closed at its end."""
    from django.db import connections

    def run():
        try:
            _at_work(task)()
        finally:
            connections.close_all()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_leader_waits_for_a_request_at_work_and_shares_its_call(regression, settings):
    """The leader is alone in its lane, but another request of the process is still at work (parsing, say):
    it waits for that one's rows instead of predicting alone, and stops as soon as they arrive."""
    settings.PREDICT_BATCH_MAX_WAIT_MS = 60_000  # the wait ends when the other arrives, never by this limit
    frames = _frames(regression, [[record] for record in regression.records()[:2]])
    prediction_run(version=regression.version, frame=frames[0])  # in memory first
    leader_waiting = threading.Event()
    answers = {}

    def leader():
        leader_waiting.set()
        answers["leader"] = prediction_run(version=regression.version, frame=frames[0]).predictions

    def slow_parser():
        leader_waiting.wait()
        time.sleep(0.3)  # the leader is in its lane by now, waiting for this request
        answers["follower"] = prediction_run(version=regression.version, frame=frames[1]).predictions

    before = dict(batching.shared_calls)
    began = time.monotonic()
    for thread in [_server_thread(work) for work in (slow_parser, leader)]:
        thread.join(timeout=30)
    assert answers == {"leader": [regression.predictions[0]], "follower": [regression.predictions[1]]}
    assert batching.shared_calls["requests"] == before["requests"] + 2  # one call answered both
    assert time.monotonic() - began < 30  # ended by the arrival, not by the wait limit
    assert batching._working == 0


def test_a_lone_request_predicts_without_waiting(regression, settings):
    settings.PREDICT_BATCH_MAX_WAIT_MS = 60_000
    frame = _frames(regression, [regression.records()[:1]])[0]
    began = time.monotonic()
    answer = _at_work(lambda: prediction_run(version=regression.version, frame=frame).predictions)()
    assert answer == [regression.predictions[0]]
    assert time.monotonic() - began < 30  # nobody else at work: no wait at all
    assert batching._working == 0


def test_a_leader_waits_no_longer_than_the_limit_for_a_request_that_never_predicts(regression, settings):
    settings.PREDICT_BATCH_MAX_WAIT_MS = 300
    frame = _frames(regression, [regression.records()[:1]])[0]
    prediction_run(version=regression.version, frame=frame)
    other_at_work, release = threading.Event(), threading.Event()

    def page_render():  # another request of the process, at work the whole time, that predicts nothing
        other_at_work.set()
        release.wait(30)

    other = _server_thread(page_render)
    other_at_work.wait(30)
    try:
        began = time.monotonic()
        answer = _at_work(lambda: prediction_run(version=regression.version, frame=frame).predictions)()
        waited = time.monotonic() - began
    finally:
        release.set()
        other.join(30)
    assert answer == [regression.predictions[0]]
    assert 0.3 <= waited < 30  # it waited for company, up to the limit, then predicted alone
    assert batching._working == 0


def test_requests_through_django_are_counted_at_work_until_their_response_is_closed(regression, api):
    from tests.predictions.conftest import HOUSE

    url = f"/api/models/{regression.version.model_id}/predict"
    assert api.post(url, {"features": HOUSE}, format="json").status_code == 200
    assert api.post(url, {"features": {**HOUSE, "sqft": "lots"}}, format="json").status_code == 400
    assert api.get("/api/models/cache/stats").status_code == 403  # staff only: refused, and still counted out
    assert batching._working == 0


def test_a_streaming_response_stops_counting_as_at_work_once_made(rf):
    from django.http import HttpResponse, StreamingHttpResponse

    streaming = batching.StreamingLeavesWork(lambda request: StreamingHttpResponse(iter([b"a,b\n"])))
    plain = batching.StreamingLeavesWork(lambda request: HttpResponse(b"{}"))
    batching.work_begin()
    try:
        plain(rf.get("/"))
        assert batching._working == 1  # a plain response counts until the server closes it
        streaming(rf.get("/"))
        assert batching._working == 0  # its body is sent while the client reads: not work leaders wait for
    finally:
        batching.work_end()
    assert batching._working == 0
