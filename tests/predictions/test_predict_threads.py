"""Small batches run a tree ensemble on the request's own thread; big ones keep the ensemble's thread pool.
Both give the predictor's own answers."""

import threading

import numpy as np
import pytest

from predictions import demo, inputs, threads
from predictions.services import model_publish, prediction_run


@pytest.fixture(scope="module")
def forest_predictor_dir(tmp_path_factory):
    from autogluon.tabular import TabularPredictor

    path = tmp_path_factory.mktemp("forest") / "predictor"
    TabularPredictor(label="price", path=str(path), verbosity=0).fit(
        demo.house_prices(400, seed=3),
        hyperparameters={"RF": {"n_estimators": 20}, "XT": {"n_estimators": 20}},
        fit_weighted_ensemble=True,
        num_cpus=2,  # the forests keep n_jobs=2: a thread pool per predict call
    )
    return path


@pytest.fixture
def threads_started(monkeypatch):
    started = []
    original = threading.Thread.start

    def counting_start(thread):
        started.append(thread.name)
        return original(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    return started


@pytest.mark.django_db
@pytest.mark.parametrize(("rows", "pool_expected"), [(3, False), (threads.SEQUENTIAL_MAX_ROWS + 1, True)])
def test_small_batches_predict_without_a_thread_pool(forest_predictor_dir, threads_started, rows, pool_expected):
    from autogluon.tabular import TabularPredictor

    version = model_publish(predictor_dir=forest_predictor_dir, name="forest")
    features = inputs.rows_from_json(
        version=version, rows=demo.house_prices(rows, seed=9).drop(columns=["price"]).to_dict("records")
    ).features
    prediction_run(version=version, frame=features)  # fetch and load; the next call is a memory hit
    threads_started.clear()

    result = prediction_run(version=version, frame=features)

    assert result.served_from == "memory"
    assert bool(threads_started) is pool_expected, threads_started
    direct = TabularPredictor.load(str(forest_predictor_dir)).predict(inputs.frame_of(features))
    np.testing.assert_allclose(result.predictions, direct.to_numpy(), rtol=1e-6)
