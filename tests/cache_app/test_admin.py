"""The admin: every cache action does what it says on real published models and says so; limits apply at once."""

import os
from pathlib import Path

import pandas as pd
import pytest
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from cache_app.models import Artifact, CacheEntry, CacheLimits, FetchRecord, TierCounter
from cache_app.services.fetch import MODEL_FOLDER
from cache_app.services.limits import limits_current
from cache_app.services.serving import artifact_warm
from cache_app.services.memory import memory_tier
from cache_app.services.stats import counters
from predictions.models import MLModel, ModelVersion, PredictionLog
from predictions.services import prediction_run, predictor_serve


def run_action(client, model_admin_url, action, pks):
    """Run an admin action, confirmed: clears ask first (tests/cache_app/test_cache_operations.py)."""
    response = client.post(
        reverse(model_admin_url),
        {"action": action, "_selected_action": [str(pk) for pk in pks], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def disk_entry(artifact) -> CacheEntry | None:
    return CacheEntry.objects.filter(artifact=artifact, tier="disk", state="ready").first()


def test_clear_on_a_version_bumps_generation_drops_memory_and_removes_the_disk_copy(admin_client, house_version):
    predictor_serve(version=house_version)
    entry = disk_entry(house_version.artifact)
    folder = Path(entry.location)
    assert folder.is_dir() and memory_tier().snapshot()

    messages = run_action(admin_client, "admin:predictions_modelversion_changelist", "clear_cache", [house_version.pk])

    artifact = Artifact.objects.get(pk=house_version.artifact_id)
    assert artifact.generation == 2
    assert not folder.exists()
    assert disk_entry(artifact) is None
    assert memory_tier().snapshot() == []
    assert len(messages) == 1
    assert "Cleared house-prices v1" in messages[0] and "1 dropped from memory" in messages[0]
    assert "now generation 2" in messages[0]


def test_clear_on_a_model_clears_every_version(admin_client, house_version, house_predictor_dir):
    from predictions.services import model_publish

    second = model_publish(predictor_dir=house_predictor_dir, name="house-prices", format="tar")
    artifact_warm(artifact=house_version.artifact)
    artifact_warm(artifact=second.artifact)

    messages = run_action(admin_client, "admin:predictions_mlmodel_changelist", "clear_cache",
                          [house_version.model_id])

    assert sorted(Artifact.objects.values_list("generation", flat=True)) == [2, 2]
    assert not CacheEntry.objects.filter(tier="disk", state="ready").exists()
    assert sorted(m.split(":")[0] for m in messages) == ["Cleared house-prices v1", "Cleared house-prices v2"]


def test_warm_creates_a_ready_disk_entry_and_says_where_it_came_from(admin_client, house_version):
    assert disk_entry(house_version.artifact) is None

    messages = run_action(admin_client, "admin:predictions_modelversion_changelist", "warm_cache", [house_version.pk])

    entry = disk_entry(house_version.artifact)
    assert entry is not None and entry.node == "test-node"
    assert (Path(entry.location) / MODEL_FOLDER / "predictor.pkl").exists()
    assert len(messages) == 1 and messages[0].startswith("Warmed house-prices v1: fetched from origin in ")

    # Warm means loaded too: this process now holds it in memory; after a restart it is still on disk.
    again = run_action(admin_client, "admin:predictions_modelversion_changelist", "warm_cache", [house_version.pk])
    assert again[0].startswith("Warmed house-prices v1: already in memory")
    memory_tier().clear()
    restarted = run_action(admin_client, "admin:predictions_modelversion_changelist", "warm_cache", [house_version.pk])
    assert restarted[0].startswith("Warmed house-prices v1: already on disk")


def test_warm_on_a_model_warms_its_current_version(admin_client, house_version):
    messages = run_action(admin_client, "admin:predictions_mlmodel_changelist", "warm_cache",
                          [house_version.model_id])
    assert disk_entry(house_version.artifact) is not None
    assert messages[0].startswith("Warmed house-prices v1")


def test_warm_reports_a_missing_origin_instead_of_failing(admin_client, house_version):
    Artifact.objects.filter(pk=house_version.artifact_id).update(source_uri=house_version.artifact.source_uri + "x")

    messages = run_action(admin_client, "admin:cache_app_artifact_changelist", "warm_cache",
                          [house_version.artifact_id])

    assert len(messages) == 1 and messages[0].startswith("Could not warm house-prices v1")
    assert disk_entry(house_version.artifact) is None


def test_verify_passes_an_intact_copy(admin_client, house_version):
    artifact_warm(artifact=house_version.artifact)

    messages = run_action(admin_client, "admin:cache_app_artifact_changelist", "verify_checksums",
                          [house_version.artifact_id])

    assert messages == ["house-prices v1: disk copy verified, every file matches."]
    assert disk_entry(house_version.artifact).verified_at is not None


def test_verify_reports_a_tampered_file_and_removes_the_copy(admin_client, house_version):
    artifact_warm(artifact=house_version.artifact)
    entry = disk_entry(house_version.artifact)
    target = Path(entry.location) / MODEL_FOLDER / "predictor.pkl"
    os.chmod(target, 0o644)
    with open(target, "ab") as handle:
        handle.write(b"tampered")

    messages = run_action(admin_client, "admin:predictions_modelversion_changelist", "verify_checksums",
                          [house_version.pk])

    assert len(messages) == 1
    assert "CORRUPT" in messages[0] and "changed file: predictor.pkl" in messages[0]
    entry.refresh_from_db()
    assert entry.state == "corrupt"
    assert not Path(entry.location).exists()


def test_verify_says_when_there_is_nothing_on_disk(admin_client, house_version):
    messages = run_action(admin_client, "admin:predictions_modelversion_changelist", "verify_checksums",
                          [house_version.pk])
    assert messages == ["house-prices v1: no disk copy on this node to verify."]


def test_pin_and_unpin(admin_client, house_version, churn_version):
    pks = [house_version.pk, churn_version.pk]
    messages = run_action(admin_client, "admin:predictions_modelversion_changelist", "pin_artifacts", pks)
    assert set(Artifact.objects.values_list("pinned", flat=True)) == {True}
    assert messages[0].startswith("Pinned 2:") and "house-prices v1" in messages[0]

    messages = run_action(admin_client, "admin:cache_app_artifact_changelist", "unpin_artifacts",
                          [house_version.artifact_id])
    assert Artifact.objects.get(pk=house_version.artifact_id).pinned is False
    assert Artifact.objects.get(pk=churn_version.artifact_id).pinned is True
    assert messages == ["Unpinned 1: house-prices v1."]


def test_limits_edit_takes_effect_at_once(admin_client):
    before = limits_current()  # primes this process's 5-second copy
    url = reverse("admin:cache_app_cachelimits_change", args=[before.pk])
    response = admin_client.post(
        url,
        {
            "disk_max_bytes": 123_456_789,
            "memory_max_bytes": before.memory_max_bytes,
            "memory_max_count": 3,
            "hit_rate_warning": 0.75,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    now = limits_current()
    assert (now.disk_max_bytes, now.memory_max_count, now.hit_rate_warning) == (123_456_789, 3, 0.75)


def test_limits_are_one_row_never_added_twice_nor_deleted(admin_client):
    limits_current()
    assert admin_client.get(reverse("admin:cache_app_cachelimits_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:cache_app_cachelimits_add")).status_code == 403
    pk = CacheLimits.objects.get().pk
    assert admin_client.get(reverse("admin:cache_app_cachelimits_delete", args=[pk])).status_code == 403


def test_limits_changelist_makes_the_row_when_there_is_none(admin_client):
    CacheLimits.objects.all().delete()
    assert admin_client.get(reverse("admin:cache_app_cachelimits_changelist")).status_code == 200
    assert CacheLimits.objects.count() == 1


def test_cache_entries_are_read_only(admin_client, house_version):
    artifact_warm(artifact=house_version.artifact)
    entry = disk_entry(house_version.artifact)
    assert admin_client.get(reverse("admin:cache_app_cacheentry_add")).status_code == 403
    response = admin_client.post(reverse("admin:cache_app_cacheentry_change", args=[entry.pk]), {"state": "corrupt"})
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.state == "ready"


def test_every_changelist_and_change_page_renders(admin_client, house_version, churn_version):
    # A row in every table: entries, fetch records, counters, a prediction log.
    prediction_run(
        version=house_version,
        frame=pd.DataFrame([{"sqft": 1500.0, "bedrooms": 3, "age_years": 10.0, "city": "austin"}]),
    )
    counters().flush()
    assert admin.site._registry
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = admin_client.get(url)
        assert response.status_code == 200, url
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert admin_client.get(change).status_code == 200, change
    # Filters and search work on the entries list.
    url = reverse("admin:cache_app_cacheentry_changelist")
    assert admin_client.get(url, {"tier": "disk", "state": "ready", "node": "test-node"}).status_code == 200
    assert admin_client.get(url, {"q": "house"}).status_code == 200


def test_model_page_shows_versions_inline_read_only(admin_client, house_version):
    response = admin_client.get(reverse("admin:predictions_mlmodel_change", args=[house_version.model_id]))
    body = response.content.decode()
    assert response.status_code == 200
    assert house_version.artifact.sha256 in body and "regression" in body
    assert 'name="versions-0-label"' not in body  # shown, not editable


def test_admin_index_links_to_the_dashboard(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert reverse("web:cache-dashboard") in body
    assert "Site administration" in body or "app-auth" in body  # Django's own index is still there


def test_dashboard_renders_with_data_and_warns_under_the_threshold(admin_client, house_version):
    predictor_serve(version=house_version)  # a memory miss and a disk miss: hit rate 0
    response = admin_client.get(reverse("web:cache-dashboard"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="hit-rate-warning"' in body
    assert "vendor/chartjs/chart.umd.js" in body and "cdn" not in body.lower()
    assert "house-prices v1" in body  # recent fetches and top by size
    assert response.context["recent_fetches"][0]["tier"] == "origin"

    for _ in range(5):
        predictor_serve(version=house_version)  # memory hits
    response = admin_client.get(reverse("web:cache-dashboard"), {"hours": 1})
    assert response.context["hit_rate"] == pytest.approx(5 / 6, abs=1e-3)
    assert 'id="hit-rate-warning"' not in response.content.decode()


def test_dashboard_is_for_staff_only(client, django_user_model):
    url = reverse("web:cache-dashboard")
    assert client.get(url).status_code == 302
    django_user_model.objects.create_user("someone", password="pw-123456")
    client.login(request=HttpRequest(), username="someone", password="pw-123456")
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_registered_models(admin_client):
    registered = {m for m in admin.site._registry}
    assert {Artifact, CacheEntry, CacheLimits, FetchRecord, TierCounter, MLModel, ModelVersion,
            PredictionLog} <= registered
