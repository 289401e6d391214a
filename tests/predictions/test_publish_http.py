"""Publishing over HTTP: an archive in, checked, extracted safely, loaded, recorded; the same archive twice is
the same version."""

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cache_app.models import Artifact
from cache_app.services import archives
from cache_app.services.integrity import file_sha256
from predictions.models import MLModel, ModelVersion, Promotion

URL = "/api/models/house-prices/versions"


@pytest.fixture
def publisher(user):
    user.user_permissions.add(Permission.objects.get(codename="publish_model"))
    return user


@pytest.fixture
def house_archives(house_predictor_dir, tmp_path_factory):
    """The house predictor as a zip and as a tar.gz (two different archives of one model)."""
    folder = tmp_path_factory.mktemp("archives")
    made = {}
    for format in ("zip", "tar.gz"):
        made[format] = folder / f"house.{format}"
        archives.archive_create(source_dir=house_predictor_dir, dest_path=made[format], format=format)
    return made


def upload(api, path, url=URL, **extra):
    with open(path, "rb") as archive:
        return api.post(url, {"archive": archive, **extra}, format="multipart")


def test_an_archive_is_published_once_and_the_same_archive_again_is_the_same_version(api, publisher, house_archives):
    first = upload(api, house_archives["zip"])
    again = upload(api, house_archives["zip"])

    assert first.status_code == 201, first.json()
    assert again.status_code == 200, again.json()
    body = first.json()
    assert (body["model"], body["version"], body["created"], body["current"]) == ("house-prices", 1, True, True)
    assert again.json()["version"] == 1 and again.json()["created"] is False
    version = ModelVersion.objects.get()
    assert version.artifact.sha256 == file_sha256(house_archives["zip"]) == body["sha256"]
    assert (version.published_via, version.published_by) == ("api", publisher)
    assert [f["name"] for f in version.features] == ["sqft", "bedrooms", "age_years", "city"]
    assert version.input_contract["rows"] > 0
    assert version.leaderboard and version.leaderboard[0]["model"] and "score_val" in version.leaderboard[0]


def test_a_new_version_becomes_current_only_after_it_was_warmed(api, publisher, house_archives):
    upload(api, house_archives["zip"])
    second = upload(api, house_archives["tar.gz"])

    body = second.json()
    assert second.status_code == 201, body
    assert (body["version"], body["current"], body["promotion"]["status"]) == (2, True, "switched")
    assert MLModel.objects.get().current_version.number == 2


def test_current_false_publishes_without_moving_the_current_version(api, publisher, house_archives):
    upload(api, house_archives["zip"])
    second = upload(api, house_archives["tar.gz"], current="false")
    assert second.status_code == 201 and second.json()["current"] is False
    assert MLModel.objects.get().current_version.number == 1
    assert not Promotion.objects.exists()


def test_publishing_needs_the_publish_permission(api, house_archives):
    response = upload(api, house_archives["zip"])
    assert response.status_code == 403
    assert not Artifact.objects.exists()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some text", "not a zip, tar.gz or tar"),
        (_zip({"../escape.txt": b"x"}), "'..'"),
        (_zip({"notes.txt": b"hello"}), "not an AutoGluon TabularPredictor"),
    ],
)
def test_what_is_not_a_safe_predictor_archive_is_a_400_naming_archive(api, publisher, content, message, settings):
    response = api.post(URL, {"archive": SimpleUploadedFile("model.zip", content)}, format="multipart")
    assert response.status_code == 400, response.json()
    assert message in response.json()["archive"][0]
    assert not Artifact.objects.exists() and not MLModel.objects.exists()


def test_a_name_that_is_not_a_slug_is_a_400_naming_name(api, publisher, house_archives):
    response = upload(api, house_archives["zip"], url="/api/models/bad.name/versions")
    assert response.status_code == 400 and "name" in response.json()
    assert not Artifact.objects.exists()


def test_feature_importance_supplied_at_publish_is_recorded_ranked(api, publisher, house_archives):
    importance = SimpleUploadedFile("importance.csv", b",importance,stddev\ncity,0.1,0.01\nsqft,0.9,0.02\n")
    response = upload(api, house_archives["zip"], feature_importance=importance)
    assert response.status_code == 201, response.json()
    recorded = ModelVersion.objects.get().feature_importance
    assert recorded["features"] == [{"feature": "sqft", "importance": 0.9}, {"feature": "city", "importance": 0.1}]


def test_feature_importance_naming_another_models_feature_is_a_400(api, publisher, house_archives):
    importance = SimpleUploadedFile("importance.json", json.dumps({"tenure_months": 0.5}).encode())
    response = upload(api, house_archives["zip"], feature_importance=importance)
    assert response.status_code == 400 and "tenure_months" in response.json()["feature_importance"][0]
    assert not ModelVersion.objects.exists()


def test_the_admin_upload_page_publishes_and_says_so(admin_client, house_archives):
    url = reverse("admin:predictions_mlmodel_upload")
    assert b"upload-form" in admin_client.get(url).content
    assert b"Upload a new version" in admin_client.get(reverse("admin:predictions_mlmodel_changelist")).content

    with open(house_archives["zip"], "rb") as archive:
        response = admin_client.post(url, {"name": "house-prices", "archive": archive, "make_current": "on"},
                                     follow=True)
    assert b"Published house-prices v1" in response.content
    assert ModelVersion.objects.get().published_via == "admin"

    with open(house_archives["zip"], "rb") as archive:
        again = admin_client.post(url, {"name": "house-prices", "archive": archive}, follow=True)
    assert b"already house-prices v1" in again.content and ModelVersion.objects.count() == 1


def test_the_admin_upload_page_shows_why_an_archive_was_refused(admin_client):
    response = admin_client.post(reverse("admin:predictions_mlmodel_upload"),
                                 {"name": "x", "archive": SimpleUploadedFile("m.zip", b"nope")})
    assert response.status_code == 400 and b"not a zip, tar.gz or tar" in response.content
    assert not MLModel.objects.exists()
