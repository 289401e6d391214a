"""Real AutoGluon predictors for the suite, trained once per session in seconds on generated data."""

import pytest

from predictions import demo


@pytest.fixture(scope="session")
def house_predictor_dir(tmp_path_factory):
    return demo.train_house_prices(tmp_path_factory.mktemp("house") / "predictor", rows=600)


@pytest.fixture(scope="session")
def churn_predictor_dir(tmp_path_factory):
    return demo.train_customer_churn(tmp_path_factory.mktemp("churn") / "predictor", rows=600)


@pytest.fixture
def house_version(db, house_predictor_dir):
    """The house-price regression, published to this test's own origin folder."""
    from predictions.services import model_publish

    return model_publish(predictor_dir=house_predictor_dir, name="house-prices")


@pytest.fixture
def churn_version(db, churn_predictor_dir):
    from predictions.services import model_publish

    return model_publish(predictor_dir=churn_predictor_dir, name="customer-churn", format="tar.gz")


def _fit(path, frame, *, label: str, **fit_options):
    """One small LightGBM model, like ``demo.train``, with the problem's own options (metric, quantiles...)."""
    from autogluon.tabular import TabularPredictor

    predictor_options = {key: fit_options.pop(key) for key in ("eval_metric", "problem_type", "quantile_levels")
                         if key in fit_options}
    TabularPredictor(label=label, path=str(path), verbosity=0, **predictor_options).fit(
        frame, hyperparameters={"GBM": {"num_boost_round": 60}}, fit_weighted_ensemble=False, num_cpus=1,
        **fit_options,
    )
    return path


def rare_churn(rows: int, *, seed: int):
    """Churn where few customers leave: F1 then calibrates a decision threshold far from 0.5."""
    import numpy as np

    frame = demo.customer_churn(rows, seed=seed)
    rng = np.random.default_rng(seed + 100)
    frame["churned"] = np.where(frame["churned"].eq("yes") & (rng.random(rows) < 0.35), "yes", "no")
    return frame


def plan_choice(rows: int, *, seed: int):
    """A three-class problem: which plan a customer is on, from how they use it."""
    return demo.customer_churn(rows, seed=seed).rename(columns={"churned": "left"})


@pytest.fixture(scope="session")
def thresholded_predictor_dir(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("thresholded") / "predictor", rare_churn(600, seed=11), label="churned",
                eval_metric="f1", calibrate_decision_threshold=True)


@pytest.fixture(scope="session")
def multiclass_predictor_dir(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("multiclass") / "predictor", plan_choice(600, seed=12), label="plan")


@pytest.fixture(scope="session")
def quantile_predictor_dir(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("quantile") / "predictor", demo.house_prices(600, seed=13), label="price",
                problem_type="quantile", quantile_levels=[0.1, 0.5, 0.9])
