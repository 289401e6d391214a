"""Publishing refuses what cannot be published with a 400 naming the field at fault, never a 500: a predictor
AutoGluon cannot load, a feature importance file whose numbers are not numbers."""

import pickle
import shutil
import tempfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cache_app.models import Artifact
from cache_app.services import archives
from predictions import loaders, registry
from predictions.models import MLModel, ModelVersion
from tests.predictions.test_publish_http import URL, _zip, house_archives, publisher, upload  # noqa: F401 - fixtures

HOUSE_FEATURES = ["sqft", "bedrooms", "age_years", "city"]


def _unloadable_zip(pickled: bytes) -> bytes:
    # This server's AutoGluon version, so the pickles themselves are what fails, not the version check.
    return _zip({"predictor.pkl": pickled, "learner.pkl": pickled, "version.txt": loaders.autogluon_version().encode()})


@pytest.mark.parametrize(
    ("pickled", "reason"),
    [
        (b"garbage", "UnpicklingError: pickle data was truncated"),
        (b"", "EOFError"),
        (b"cno_such_module\nThing\n.", "ModuleNotFoundError: No module named 'no_such_module'"),
        (pickle.dumps({"not": "a predictor"}), "AttributeError"),
    ],
    ids=["garbage", "empty", "unknown-module", "a-dict"],
)
def test_a_predictor_autogluon_cannot_load_is_a_400_naming_archive(api, publisher, pickled, reason):
    response = api.post(URL, {"archive": SimpleUploadedFile("model.zip", _unloadable_zip(pickled))}, format="multipart")
    assert response.status_code == 400, response.json()
    message = response.json()["archive"][0]
    assert message.startswith("AutoGluon cannot load this predictor") and reason in message
    assert not Artifact.objects.exists() and not MLModel.objects.exists()


def test_a_predictor_missing_its_model_files_is_a_400_that_names_no_server_path(
    api, publisher, house_predictor_dir, tmp_path
):
    copy = shutil.copytree(house_predictor_dir, tmp_path / "predictor")
    for model_file in copy.glob("models/*/model.pkl"):
        model_file.unlink()
    archives.archive_create(source_dir=copy, dest_path=tmp_path / "broken.zip", format="zip")

    response = upload(api, tmp_path / "broken.zip")
    assert response.status_code == 400, response.json()
    message = response.json()["archive"][0]
    assert "FileNotFoundError" in message and "model.pkl" in message
    assert tempfile.gettempdir() not in message and "publish-upload-" not in message
    assert not Artifact.objects.exists()


def test_the_admin_upload_page_shows_why_autogluon_cannot_load_a_predictor(admin_client):
    response = admin_client.post(reverse("admin:predictions_mlmodel_upload"),
                                 {"name": "x", "archive": SimpleUploadedFile("m.zip", _unloadable_zip(b"garbage"))})
    assert response.status_code == 400
    assert b"AutoGluon cannot load this predictor: UnpicklingError" in response.content
    assert not MLModel.objects.exists()


NOT_NUMBERS = [
    ("fi.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("fi.json", b'{"sqft": ' + b"9" * 4000 + b"}", "not a finite number"),
    ("fi.json", b'{"sqft": true}', "not a finite number: True"),
]


@pytest.mark.parametrize(("filename", "content", "message"), NOT_NUMBERS, ids=["nested", "4000-digits", "true"])
def test_feature_importance_that_is_not_numbers_is_a_400_naming_it(
    api, publisher, house_archives, filename, content, message
):
    importance = SimpleUploadedFile(filename, content)
    response = upload(api, house_archives["zip"], feature_importance=importance)
    assert response.status_code == 400, response.json()
    assert message in response.json()["feature_importance"][0]
    assert not ModelVersion.objects.exists()


def test_the_admin_upload_page_shows_why_feature_importance_was_refused(admin_client, house_archives):
    with open(house_archives["zip"], "rb") as archive:
        response = admin_client.post(reverse("admin:predictions_mlmodel_upload"), {
            "name": "house-prices", "archive": archive,
            "feature_importance": SimpleUploadedFile("fi.json", b'{"sqft": ' + b"9" * 4000 + b"}"),
        })
    assert response.status_code == 400 and b"not a finite number" in response.content
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("fi.json", b'{"sqft": ' + b"9" * 5000 + b"}"),  # past int()'s 4,300 digits
        ("fi.json", b'{"sqft": 1e400}'),
        ("fi.json", b'{"sqft": NaN}'),
        ("fi.json", b'{"sqft": -Infinity}'),
        ("fi.json", b'{"sqft": null}'),
        ("fi.json", b'{"sqft": false}'),
        ("fi.json", b'{"sqft": "0.5"}'),  # a JSON number is a number; text is text, as in the predict API
        ("fi.json", b'{"sqft": [0.5]}'),
        ("fi.json", b'[{"feature": "sqft"}]'),
        ("fi.json", b'[{"feature": ' + b"[" * 900 + b"]" * 900 + b', "importance": 1}]'),
        ("fi.csv", b"feature,importance\nsqft,1_000\n"),
        ("fi.csv", b"feature,importance\nsqft,nan\n"),
        ("fi.csv", b"feature,importance\nsqft,Infinity\n"),
        ("fi.csv", b"feature,importance\nsqft,1e999\n"),
        ("fi.csv", b"feature,importance\nsqft,0x10\n"),
        ("fi.csv", "feature,importance\nsqft,\u0661\n".encode()),  # ARABIC-INDIC DIGIT ONE: float() takes it
        ("fi.csv", b"feature,importance\nsqft,\n"),
        ("fi.csv", b"feature,importance\nsqft,\xff\n"),
        ("fi.csv", b"importance,feature\n0.5\n"),  # a row too short to hold its feature's name
    ],
    ids=lambda value: value if isinstance(value, str) else ascii(value[:40]),
)
def test_every_value_that_is_not_a_finite_number_is_refused(filename, content):
    with pytest.raises(registry.InvalidImportance) as refused:
        registry.feature_importance_parse(data=content, filename=filename, features=HOUSE_FEATURES)
    assert str(refused.value).startswith(filename) and len(str(refused.value)) < 300


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("fi.json", b'{"sqft": 2, "city": -0.25, "bedrooms": 1e-3, "age_years": 0}'),
        ("fi.json", b'[{"feature": "sqft", "importance": 2}, {"feature": "city", "importance": -0.25}]'),
        ("fi.csv", b",importance,stddev\nsqft, 2 \ncity,-.25,0.1\nbedrooms,1E-3\nage_years,+0\n"),
    ],
)
def test_numbers_as_json_and_csv_write_them_are_read(filename, content):
    parsed = registry.feature_importance_parse(data=content, filename=filename, features=HOUSE_FEATURES)
    assert parsed["features"][0] == {"feature": "sqft", "importance": 2.0}
    assert {row["feature"]: row["importance"] for row in parsed["features"]}["city"] == -0.25
