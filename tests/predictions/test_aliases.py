"""Aliases: predict by alias, move them over the API and in the admin (warmed first), roll back, all recorded."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from cache_app.models import Artifact
from cache_app.services.memory import memory_tier
from predictions.models import MLModel, ModelAlias, Promotion
from tests.predictions.conftest import HOUSE


@pytest.fixture
def two_versions(house_version, house_predictor_dir):
    """house-prices v1 and v2 (current), the same predictor published twice."""
    from predictions.services import model_publish

    return house_version, model_publish(predictor_dir=house_predictor_dir, name="house-prices", format="tar.gz")


@pytest.fixture
def promoter(user):
    user.user_permissions.add(Permission.objects.get(codename="promote_model"))
    return user


def move(api, name, version):
    return api.put(f"/api/models/house-prices/aliases/{name}", {"version": version}, format="json")


def predict(api, query=""):
    return api.post(f"/api/models/house-prices/predict{query}", {"features": HOUSE}, format="json")


def test_predict_by_alias_answers_with_the_aliased_version(api, promoter, two_versions):
    assert move(api, "staging", 1).status_code == 200

    by_alias, plain, by_version = predict(api, "?alias=staging"), predict(api), predict(api, "?version=1")

    assert by_alias.status_code == 200, by_alias.json()
    assert by_alias.json()["version"] == 1
    assert plain.json()["version"] == 2  # no alias, no version: the current version, as before aliases
    assert by_alias.json()["prediction"] == by_version.json()["prediction"]


def test_alias_and_version_together_is_a_400_naming_alias(api, promoter, two_versions):
    move(api, "staging", 1)
    response = predict(api, "?alias=staging&version=2")
    assert response.status_code == 400
    assert "alias" in response.json()


def test_an_unknown_alias_is_a_404_naming_it(api, two_versions):
    response = predict(api, "?alias=nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_moving_an_alias_warms_the_target_first_and_records_who_and_when(api, promoter, two_versions):
    v1, _ = two_versions
    memory_tier().clear()

    response = move(api, "production", 1)

    body = response.json()
    assert response.status_code == 200, body
    assert (body["alias"], body["status"], body["to_version"], body["from_version"]) == ("production", "switched", 1, None)
    assert body["requested_by"] == "scientist"
    assert memory_tier().get(v1.artifact.cache_key) is not None  # in memory before the alias pointed at it
    listed = api.get("/api/models/house-prices/aliases").json()
    assert listed["current_version"] == 2
    assert [(a["name"], a["version"], a["updated_by"]) for a in listed["aliases"]] == [("production", 1, "scientist")]
    assert [(h["alias"], h["to_version"]) for h in listed["history"]] == [("production", 1)]


def test_moving_the_current_version_goes_through_the_same_warm_up(api, promoter, two_versions):
    response = move(api, "current", 1)
    assert response.status_code == 200, response.json()
    assert MLModel.objects.get(name="house-prices").current_version.number == 1
    assert predict(api).json()["version"] == 1


def test_a_failed_warm_switches_nothing_and_says_why(api, promoter, two_versions):
    v1, _ = two_versions
    move(api, "production", 2)
    memory_tier().clear()
    Artifact.objects.filter(pk=v1.artifact_id).update(source_uri=v1.artifact.source_uri + "-missing")

    response = move(api, "production", 1)

    body = response.json()
    assert response.status_code == 503 and body["code"] == "promotion_failed"
    assert body["status"] == "failed" and "-missing" in body["reason"]
    assert ModelAlias.objects.get(name="production").version.number == 2
    assert predict(api, "?alias=production").json()["version"] == 2


def test_moving_an_alias_needs_the_promote_permission(api, two_versions):
    assert move(api, "production", 1).status_code == 403
    assert not ModelAlias.objects.exists()


@pytest.mark.parametrize("name", ["bad name", "x" * 65, "-leading"])
def test_an_invalid_alias_name_is_a_400_naming_it(api, promoter, two_versions, name):
    response = move(api, name, 1)
    assert response.status_code in (400, 404)  # a space cannot even route
    assert not ModelAlias.objects.exists()


def _finished(promotion_id: int) -> Promotion:
    """A promotion the admin started in the background, once it is done (they take seconds)."""
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        promotion = Promotion.objects.get(pk=promotion_id)
        if promotion.status != Promotion.Status.WARMING:
            return promotion
        time.sleep(0.1)
    raise AssertionError(f"promotion {promotion_id} still warming")


@pytest.mark.django_db(transaction=True)
def test_admin_moves_an_alias_shows_progress_and_rolls_back_after_a_confirmation(admin_client, two_versions):
    v1, v2 = two_versions
    changelist = reverse("admin:predictions_mlmodel_changelist")
    form = admin_client.post(changelist, {"action": "promote", "_selected_action": [v1.model_id]})
    assert form.status_code == 200 and b"Warm, then move" in form.content

    for version in (v1, v2):
        started = admin_client.post(changelist, {"action": "promote", "_selected_action": [v1.model_id],
                                                 "post": "yes", "name": "production", "version": version.pk})
        assert started.status_code == 302
        promotion = Promotion.objects.order_by("-pk").first()
        assert _finished(promotion.pk).status == Promotion.Status.SWITCHED
    page = admin_client.get(started["Location"]).content.decode()
    assert 'id="promotion-progress"' in page and ">ok<" in page

    alias = ModelAlias.objects.get(name="production")
    aliases_url = reverse("admin:predictions_modelalias_changelist")
    confirm = admin_client.post(aliases_url, {"action": "rollback", "_selected_action": [alias.pk]})
    assert b"v2 -&gt; v1" in confirm.content and b"Yes, roll back" in confirm.content
    assert ModelAlias.objects.get(pk=alias.pk).version == v2  # asking is not doing

    done = admin_client.post(aliases_url, {"action": "rollback", "_selected_action": [alias.pk], "post": "yes"})
    assert done.status_code == 302
    rollback = _finished(Promotion.objects.order_by("-pk").first().pk)
    assert (rollback.status, rollback.rollback, rollback.requested_by.username) == ("switched", True, "admin")
    assert (rollback.from_version, rollback.to_version) == (v2, v1)
    assert ModelAlias.objects.get(pk=alias.pk).version == v1


def test_admin_refuses_to_roll_back_an_alias_that_never_moved(admin_client, api, promoter, two_versions):
    move(api, "staging", 1)
    alias = ModelAlias.objects.get(name="staging")
    page = admin_client.post(reverse("admin:predictions_modelalias_changelist"),
                             {"action": "rollback", "_selected_action": [alias.pk], "post": "yes"})
    assert b"nothing to roll back to" in page.content and b"Yes, roll back" not in page.content
    assert Promotion.objects.count() == 1
