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
