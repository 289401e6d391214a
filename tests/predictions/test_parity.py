"""Every prediction path answers exactly what AutoGluon's own ``TabularPredictor`` answers for the same rows.

Four real models (a binary classifier whose F1-calibrated decision threshold is far from 0.5, a multiclass
classifier, a regression, a quantile regression), and every way a row reaches them: the API with JSON (one
row and many), with a CSV body, with CSV out; the web form and the web CSV download; a batch job. Each
answer is compared value by value (no tolerance) with ``predict`` and ``predict_proba`` run by hand on a
DataFrame of the same rows.
"""

import csv
import io
import json

import pytest
from django.urls import reverse

from predictions import demo
from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.models import BatchChunk
from tests.models import plan_choice, rare_churn
from tests.predictions.test_web import predict_url, sections, text_of, upload

ROWS = 120

CASES = {
    "binary": ("thresholded_predictor_dir", lambda: rare_churn(ROWS, seed=21), "churned"),
    "multiclass": ("multiclass_predictor_dir", lambda: plan_choice(ROWS, seed=22), "plan"),
    "regression": ("house_predictor_dir", lambda: demo.house_prices(ROWS, seed=23), "price"),
    "quantile": ("quantile_predictor_dir", lambda: demo.house_prices(ROWS, seed=24), "price"),
}


class Case:
    """A published model, rows it has never seen, and AutoGluon's own answers for them."""

    def __init__(self, request, kind):
        from autogluon.tabular import TabularPredictor

        from predictions.services import model_publish

        fixture, make_frame, label = CASES[kind]
        predictor_dir = request.getfixturevalue(fixture)
        self.kind = kind
        self.version = model_publish(predictor_dir=predictor_dir, name=f"parity-{kind}")
        self.features = make_frame().drop(columns=[label])
        predictor = TabularPredictor.load(str(predictor_dir), verbosity=0)
        self.predictor = predictor
        predicted = predictor.predict(self.features)
        if kind == "quantile":
            self.predictions = [
                {str(level): float(value) for level, value in zip(predicted.columns, row)}
                for row in predicted.to_numpy().tolist()
            ]
        else:
            self.predictions = predicted.tolist()
        self.probabilities = None
        if kind in ("binary", "multiclass"):
            proba = predictor.predict_proba(self.features)
            self.probabilities = [
                {str(c): float(p) for c, p in zip(proba.columns, row)} for row in proba.to_numpy().tolist()
            ]

    def records(self) -> list[dict]:
        return [{name: _plain(value) for name, value in row.items()} for row in self.features.to_dict("records")]

    def csv_bytes(self) -> bytes:
        return self.features.to_csv(index=False).encode()

    def expected_cells(self, index: int) -> dict[str, str]:
        """What a CSV result row holds for row ``index``: each value written as Python writes it."""
        prediction = self.predictions[index]
        if isinstance(prediction, dict):
            cells = {f"prediction_{level}": str(value) for level, value in prediction.items()}
        else:
            cells = {"prediction": str(prediction)}
        for label, p in (self.probabilities[index] if self.probabilities else {}).items():
            cells[f"probability_{label}"] = str(p)
        return cells

    def check_csv(self, text: str) -> None:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == ROWS
        for index, row in enumerate(rows):
            expected = self.expected_cells(index)
            assert {key: row[key] for key in expected} == expected, f"row {index + 1}"

    def check_json(self, body: dict) -> None:
        assert body["predictions"] == self.predictions
        assert body.get("probabilities") == self.probabilities


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@pytest.fixture(params=list(CASES))
def case(request, db):
    return Case(request, request.param)


def test_the_binary_model_really_has_a_threshold_that_changes_answers(request, db):
    """Without this, the parity below would not show that the threshold is applied."""
    binary = Case(request, "binary")
    assert binary.predictor.decision_threshold < 0.4
    most_probable = [max(p, key=p.get) for p in binary.probabilities]
    assert sum(a != b for a, b in zip(most_probable, binary.predictions)) >= 5


def test_api_json_many_rows(api, case):
    response = api.post(f"/api/models/{case.version.model_id}/predict", {"instances": case.records()}, format="json")
    assert response.status_code == 200, response.content
    case.check_json(response.json())


def test_api_json_one_row_at_a_time(api, case):
    for index, row in enumerate(case.records()[:8]):
        response = api.post(f"/api/models/{case.version.model_id}/predict", {"features": row}, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["prediction"] == case.predictions[index]
        if case.probabilities:
            assert body["probabilities"] == case.probabilities[index]
            assert list(body["probabilities"]) == [str(c) for c in case.predictor.class_labels]


def test_api_csv_body(api, case):
    response = api.post(f"/api/models/{case.version.model_id}/predict", case.csv_bytes(), content_type="text/csv")
    assert response.status_code == 200, response.content
    case.check_json(response.json())


def test_api_csv_out(api, case):
    response = api.post(
        f"/api/models/{case.version.model_id}/predict?format=csv", case.csv_bytes(), content_type="text/csv",
        HTTP_ACCEPT="text/csv",
    )
    assert response.status_code == 200, response.content
    case.check_csv(response.content.decode())


def test_web_form(signed_in, case):
    for index, row in enumerate(case.records()[:4]):
        response = signed_in.post(predict_url(case.version.model.name), {k: str(v) for k, v in row.items()})
        assert response.status_code == 200
        expected = case.predictions[index]
        if isinstance(expected, dict):
            cells = [tag for tag in sections(response).text["quantiles"] if tag.strip()]
            shown = dict(zip(cells[2::2], cells[3::2]))  # after the "quantile", "value" headings
            assert {level: float(value) for level, value in shown.items()} == expected
        elif isinstance(expected, float):
            assert float(text_of(response, "prediction-value")) == expected
        else:
            assert text_of(response, "prediction-value") == str(expected)


def test_web_csv_download(signed_in, case):
    name = case.version.model.name
    response = signed_in.post(reverse("web:model-predict-csv", kwargs={"name": name}), {"file": upload("rows.csv", case.csv_bytes())})
    assert response.status_code == 200
    download = signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": name}))
    case.check_csv(download.getvalue().decode())


def test_batch_job(case, settings):
    settings.PREDICT_JOB_CHUNK_ROWS = 50  # three chunks: answers do not depend on how rows are batched
    job = job_services.job_create(version=case.version, data=case.csv_bytes())
    for chunk_id in BatchChunk.objects.filter(job=job).order_by("index").values_list("pk", flat=True):
        assert job_services.chunk_run(chunk_id=chunk_id)
    job.refresh_from_db()
    case.check_csv("".join(job_selectors.job_result_lines(job=job)))


def test_json_numbers_keep_their_types(api, request, db):
    regression = Case(request, "regression")
    body = api.post(
        f"/api/models/{regression.version.model_id}/predict", {"instances": regression.records()[:3]}, format="json"
    ).json()
    assert all(type(value) is float for value in body["predictions"])
    # The exact float32 value AutoGluon computed, widened: no rounding on the way.
    assert json.loads(json.dumps(body["predictions"])) == regression.predictions[:3]
