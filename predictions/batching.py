"""Adaptive micro-batching: concurrent small requests for one model in one process share one predict call.

A model's predict costs about as much for one row as for dozens (AutoGluon's feature pipeline and the model
calls are per call, not per row), so under load a server that predicts each request alone spends most of its
CPU on that fixed cost. Here a request joins the *lane* of its predictor:

- An idle lane: the request leads at once. It waits for company only while other requests of this process
  are *at work* (from Django's ``request_started`` to ``request_finished``, less the time they spend queued
  in a lane; a streaming response stops counting once made), so one client never waits, and its latency is
  unbatched.
- A busy lane (another request is predicting): the request queues. When the running predict ends, its
  thread hands the lane to the first queued request, which leads the same way.

A leader waits at most ``PREDICT_BATCH_MAX_WAIT_MS``, and stops at ``PREDICT_BATCH_MAX_ROWS`` rows or as soon
as no other request is at work, then predicts all queued rows as one frame and hands each request exactly its
own rows' answers. In a threaded server a predict holds the GIL, so little else advances while it runs; the
threads at work when it ends are parsing the next requests or answering the last batch, and waiting for them
costs the process no CPU: they would run first anyway. Counting them from Django's handler to the last byte
sent, not only from the view to the lane, is what makes batches large (bench P7 measures it).

Every answer still comes from ``loaders.predictor_answer`` (one function for the whole portal): rows are
independent in AutoGluon's tabular inference, so a row's answer does not depend on its neighbours. Requests
are only joined when their column dtypes are identical, so joining changes no value or type a request would
have had alone. A request's rows come as ``inputs.Columns`` (arrays, not yet a frame: one frame is built per
call, not per request) or as a DataFrame. A request of ``PREDICT_BATCH_MAX_ROWS`` rows or more runs alone.
"""

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from predictions import inputs, loaders, threads


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Request:
    features: Any  # inputs.Columns or a DataFrame
    # Released once, when the request has its answer or is handed the lane; its thread waits to acquire it.
    # A bare lock rather than an Event: waking a batch's threads through Events (a Python-level condition
    # each, re-taken by every woken thread) cost 3-7% of the throughput of 32 concurrent clients (bench P7).
    done: threading.Lock = field(default_factory=_held_lock)
    answer: tuple | None = None
    error: BaseException | None = None
    lead: bool = False  # handed the lane by the previous leader: predict what has queued


@dataclass
class _Lane:
    predictor: Any
    pending: list
    busy: bool = False  # a leader is collecting or predicting


# One lock for every lane: it is held for microseconds (append, take, hand over), never while predicting.
_lock = threading.Lock()
_arrived = threading.Condition(_lock)
_lanes: dict[tuple, _Lane] = {}
# Requests of this process at work: begun and not finished, less those queued in a lane (their threads wait
# for a leader, so a leader waiting for them would wait for itself).
_working = 0
_at_work = threading.local()
# Requests answered by a shared call, and the most requests one call answered: for tests and operators.
shared_calls = {"requests": 0, "largest": 0}


def predictor_answer_batched(predictor, features) -> tuple[list, list[dict] | None]:
    """``loaders.predictor_answer`` on ``features`` (``inputs.Columns`` or a DataFrame), sharing the predict
    call with concurrent requests."""
    max_rows = settings.PREDICT_BATCH_MAX_ROWS
    if len(features) >= max_rows or max_rows <= 1:
        return _answer(predictor, inputs.frame_of(features))
    # The predictor object itself (its id, held alive by the lane), so a reloaded model never shares a batch
    # with the copy it replaced; and the dtypes, so joined rows keep every column's type.
    key = (id(predictor), inputs.dtypes_of(features))
    request = _Request(features=features)
    counted = getattr(_at_work, "counted", False)
    with _lock:
        if counted:
            _work_less()
        lane = _lanes.get(key)
        if lane is None:
            lane = _lanes[key] = _Lane(predictor=predictor, pending=[])
        lane.pending.append(request)
        lead = not lane.busy
        lane.busy = True
        # A waiting leader stops for a full batch, or when no other request is at work (_work_less).
        if not lead and _rows(lane.pending) >= settings.PREDICT_BATCH_MAX_ROWS:
            _arrived.notify_all()
    try:
        if not lead:
            request.done.acquire()
            if not request.lead:
                return _outcome(request)
        _lead(key, lane)
        return _outcome(request)
    finally:
        if counted:
            with _lock:
                _work_more()


def work_begin(**_kwargs) -> None:
    """On Django's ``request_started``: this thread's request is at work. A thread counts once, so a request
    made inside another (the test client in a view) is not counted twice."""
    if getattr(_at_work, "counted", False):
        return
    _at_work.counted = True
    with _lock:
        _work_more()


def work_end(**_kwargs) -> None:
    """On Django's ``request_finished``, sent when the server closes the response after its last byte (or
    earlier, by ``StreamingLeavesWork``)."""
    if not getattr(_at_work, "counted", False):
        return
    _at_work.counted = False
    with _lock:
        _work_less()


class StreamingLeavesWork:
    """Middleware: a streaming response (a job's results, a kept result file) is sent for as long as its
    client reads, mostly waiting on the socket; leaders would wait their whole limit for it. Its thread
    stops counting as at work once the response is made."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.streaming:
            work_end()
        return response


def _work_more() -> None:
    """Called with ``_lock`` held."""
    global _working
    _working += 1


def _work_less() -> None:
    """Called with ``_lock`` held: the last request at work wakes a waiting leader."""
    global _working
    _working -= 1
    if _working == 0:
        _arrived.notify_all()


def _lead(key: tuple, lane: _Lane) -> None:
    """Predict the lane's queued requests (this thread's own first) as one batch, then hand the lane on."""
    max_rows = settings.PREDICT_BATCH_MAX_ROWS
    with _lock:
        deadline = time.monotonic() + settings.PREDICT_BATCH_MAX_WAIT_MS / 1000
        while _working > 0 and _rows(lane.pending) < max_rows and (left := deadline - time.monotonic()) > 0:
            _arrived.wait(left)
        batch, rows = [], 0
        for queued in lane.pending:
            if batch and rows + len(queued.features) > max_rows:
                break
            batch.append(queued)
            rows += len(queued.features)
        del lane.pending[: len(batch)]
    try:
        _predict(lane.predictor, batch)
    finally:
        with _lock:
            if lane.pending:
                successor = lane.pending[0]
                successor.lead = True
                successor.done.release()
            else:
                lane.busy = False
                del _lanes[key]
        for queued in batch[1:]:
            queued.done.release()


def _predict(predictor, batch: list[_Request]) -> None:
    if len(batch) == 1:
        _settle(batch[0], predictor)
        return
    try:
        predictions, probabilities = _answer(predictor, inputs.frame_joined([queued.features for queued in batch]))
    except Exception:  # noqa: BLE001 - whatever failed, each request gets its own answer or its own error
        for queued in batch:
            _settle(queued, predictor)
        return
    with _lock:
        shared_calls["requests"] += len(batch)
        shared_calls["largest"] = max(shared_calls["largest"], len(batch))
    start = 0
    for queued in batch:
        end = start + len(queued.features)
        queued.answer = (predictions[start:end], probabilities[start:end] if probabilities is not None else None)
        start = end


def _settle(request: _Request, predictor) -> None:
    try:
        request.answer = _answer(predictor, inputs.frame_of(request.features))
    except BaseException as error:  # handed to the request's own thread
        request.error = error


def _answer(predictor, frame):
    with threads.prediction_threads(rows=len(frame)):
        return loaders.predictor_answer(predictor, frame)


def _outcome(request: _Request):
    if request.error is not None:
        raise request.error
    return request.answer


def _rows(pending: list[_Request]) -> int:
    return sum(len(r.features) for r in pending)
