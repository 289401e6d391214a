"""Large predictions share the cores: each takes those no other large prediction of the server holds.

The count lives in shared memory made before gunicorn forks; here a forked child stands in for a second
worker. No timing: the team sizes handed out and the cores counted as held are what is checked.
"""

import multiprocessing

import pytest

from predictions import threads

LARGE = threads.SEQUENTIAL_MAX_ROWS + 1


@pytest.fixture
def four_cores(monkeypatch, settings):
    settings.PREDICT_THREADS_PER_WORKER = 0
    monkeypatch.setattr(threads, "cores", lambda: 4)
    assert threads.cores_held() == 0


def test_a_large_prediction_alone_takes_every_core_and_the_next_ones_share_what_is_left(four_cores):
    import lightgbm  # noqa: F401 - its OpenMP runtime is among those set

    runtimes = threads._openmp_runtimes()
    assert runtimes
    with threads.prediction_threads(rows=LARGE) as first:
        assert first == 4
        assert {runtime.get_num_threads() for runtime in runtimes} == {4}
        with threads.prediction_threads(rows=LARGE) as second:
            assert second == 1  # never none
            assert threads.cores_held() == 5
        assert threads.cores_held() == 4
    assert threads.cores_held() == 0
    with threads.prediction_threads(rows=LARGE) as again:
        assert again == 4


def test_small_predictions_use_one_thread_and_hold_nothing(four_cores):
    with threads.prediction_threads(rows=3) as count:
        assert count == 1
        assert threads.cores_held() == 0


def test_a_configured_team_size_is_used_as_it_is(settings):
    settings.PREDICT_THREADS_PER_WORKER = 3
    with threads.prediction_threads(rows=LARGE) as count:
        assert count == 3
        assert threads.cores_held() == 0


def _hold_cores_and_die(ready, release):
    with threads.prediction_threads(rows=LARGE):
        ready.set()
        release.wait(30)
        import os

        os._exit(0)  # killed mid-prediction: nothing given back


def test_another_worker_s_team_is_seen_and_a_dead_worker_s_cores_come_back(four_cores):
    fork = multiprocessing.get_context("fork")
    ready, release = fork.Event(), fork.Event()
    worker = fork.Process(target=_hold_cores_and_die, args=(ready, release))
    worker.start()
    try:
        assert ready.wait(30)
        assert threads.cores_held() == 4
        with threads.prediction_threads(rows=LARGE) as here:
            assert here == 1
    finally:
        release.set()
        worker.join(30)
    assert threads.cores_held() == 4  # it died holding them
    threads.worker_forget(worker.pid)
    assert threads.cores_held() == 0
