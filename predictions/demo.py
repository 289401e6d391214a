"""Small real AutoGluon models trained in seconds on generated data: the demo catalog and the test suite's models."""

from pathlib import Path

CITIES = ["austin", "boston", "chicago", "denver"]


def house_prices(rows: int, *, seed: int = 0):
    """A house-price table like the seeds' example: price from size, rooms, age and city."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sqft": rng.uniform(500, 4500, rows).round(0),
            "bedrooms": rng.integers(1, 6, rows),
            "age_years": rng.integers(0, 80, rows),
            "city": rng.choice(CITIES, rows),
        }
    )
    city_premium = frame["city"].map({"austin": 40_000, "boston": 160_000, "chicago": 60_000, "denver": 90_000})
    frame["price"] = (
        frame["sqft"] * 150 + frame["bedrooms"] * 12_000 - frame["age_years"] * 900 + city_premium
        + rng.normal(0, 15_000, rows)
    ).round(0)
    return frame


def customer_churn(rows: int, *, seed: int = 1):
    """A binary classification table: does a customer leave, from tenure, spend and plan."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, rows),
            "monthly_spend": rng.uniform(10, 120, rows).round(2),
            "support_calls": rng.integers(0, 10, rows),
            "plan": rng.choice(["basic", "plus", "premium"], rows),
        }
    )
    risk = 0.04 * frame["support_calls"] - 0.03 * frame["tenure_months"] + 0.01 * frame["monthly_spend"]
    risk += frame["plan"].map({"basic": 0.6, "plus": 0.0, "premium": -0.6})
    frame["churned"] = np.where(risk + rng.normal(0, 0.5, rows) > 0, "yes", "no")
    return frame


def train(frame, *, label: str, path: Path, hyperparameters: dict | None = None):
    """Fit a small, fast predictor (one LightGBM model) and return its folder."""
    from autogluon.tabular import TabularPredictor

    TabularPredictor(label=label, path=str(path), verbosity=0).fit(
        frame,
        hyperparameters=hyperparameters or {"GBM": {"num_boost_round": 60}},
        fit_weighted_ensemble=False,
        num_cpus=1,
    )
    return Path(path)


def train_house_prices(path: Path, *, rows: int = 1_000) -> Path:
    return train(house_prices(rows), label="price", path=path)


def train_customer_churn(path: Path, *, rows: int = 1_000) -> Path:
    return train(customer_churn(rows), label="churned", path=path)
