"""The serving profile measured at publish in a fresh process, shown on the page and used by the memory tier."""

import pytest
from django.contrib.auth.models import Permission

from cache_app.services.memory import memory_tier
from cache_app.services import archives
from predictions.models import ModelVersion
from predictions.services import model_publish, predictor_serve

PROFILE_KEYS = {"load_seconds", "resident_bytes", "one_row_ms", "rows_per_second", "batch_rows", "autogluon_version"}


@pytest.fixture
def profiled_version(db, churn_predictor_dir):
    return model_publish(predictor_dir=churn_predictor_dir, name="customer-churn", profile=True)


def test_a_publish_measures_load_memory_latency_and_throughput_in_a_fresh_process(profiled_version):
    profile = ModelVersion.objects.get(pk=profiled_version.pk).serving_profile
    assert set(profile) == PROFILE_KEYS, profile
    assert profile["batch_rows"] == 1000
    assert profile["load_seconds"] > 0 and profile["resident_bytes"] > 0
    assert profile["one_row_ms"] > 0 and profile["rows_per_second"] > 0


def test_the_memory_tier_budgets_a_profiled_version_with_the_measured_bytes(profiled_version, house_version):
    memory_tier().clear()
    predictor_serve(version=profiled_version)
    predictor_serve(version=house_version)  # published without a profile: its folder size stands in

    sizes = {row["artifact_id"]: row["size_bytes"] for row in memory_tier().snapshot()}
    assert sizes[profiled_version.artifact_id] == profiled_version.serving_profile["resident_bytes"]
    assert sizes[house_version.artifact_id] == house_version.artifact.unpacked_bytes


def test_the_model_page_shows_the_profile(signed_in, profiled_version):
    html = signed_in.get("/models/customer-churn/").content.decode()
    assert 'id="serving-profile"' in html and "rows/s at 1000" in html


def test_publishing_over_http_profiles_the_version(api, user, churn_predictor_dir, tmp_path):
    user.user_permissions.add(Permission.objects.get(codename="publish_model"))
    archive = tmp_path / "churn.tar.gz"
    archives.archive_create(source_dir=churn_predictor_dir, dest_path=archive, format="tar.gz")
    with open(archive, "rb") as upload:
        response = api.post("/api/models/customer-churn/versions", {"archive": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert set(ModelVersion.objects.get().serving_profile) == PROFILE_KEYS
