"""Safe cache operations: strict query parameters on the cache endpoints, a confirmation before an admin clear,
a record of who did every cache action and limits change, and limits typed in human units and checked."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cache_app.models import Artifact, CacheLimits
from cache_app.services.limits import limits_current
from cache_app.services.serving import artifact_warm

GIB = 1024**3


@pytest.fixture
def manager(django_user_model):
    user = django_user_model.objects.create_user("manager", password="pw-123456", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="manage_cache", content_type__app_label="cache_app"),
        *Permission.objects.filter(codename__in=["view_artifact", "view_modelversion"]),
    )
    return user


@pytest.fixture
def manager_api(manager):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=manager).key}")
    return client


def generation(version) -> int:
    return Artifact.objects.get(pk=version.artifact_id).generation


# --- query parameters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, named, message",
    [
        ("model_id=", "model_id", "may not be blank"),
        ("model_id=%20", "model_id", "may not be blank"),
        ("modelid=1", "modelid", "unknown query parameter; this endpoint takes model_id, tier"),
        ("tier=", "tier", "may not be blank"),
        ("tier=shared&model=1", "model", "unknown query parameter"),
        ("model_id=1&model_id=2", "model_id", "given more than once"),
        ("tier=everything", "tier", "is not a valid choice"),
    ],
)
def test_a_clear_with_a_bad_parameter_is_a_400_naming_it_and_clears_nothing(manager_api, house_version, query, named,
                                                                             message):
    artifact_warm(artifact=house_version.artifact)
    response = manager_api.delete(f"/api/models/cache?{query}")
    assert response.status_code == 400, response.content
    assert message in response.json()[named][0]
    assert generation(house_version) == 1
    assert not LogEntry.objects.exists()


def test_a_bare_clear_still_clears_every_model_and_is_recorded(manager_api, manager, house_version, churn_version):
    response = manager_api.delete("/api/models/cache")
    assert response.status_code == 200
    assert response.json() == {"message": "All model cache cleared", "artifacts_cleared": 2}
    assert (generation(house_version), generation(churn_version)) == (2, 2)
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_repr, entry.change_message) == (
        manager, "every cached model", "clear: API: 2 artifacts cleared"
    )


def test_a_clear_by_model_is_recorded_per_version(manager_api, manager, house_version):
    response = manager_api.delete(f"/api/models/cache?model_id={house_version.model.name}&format=json")
    assert response.status_code == 200 and response.json()["versions_cleared"] == 1
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_repr, entry.object_id) == (manager, "house-prices v1", str(house_version.artifact_id))
    assert entry.change_message == "clear: API: now generation 2"


@pytest.mark.parametrize(
    "method, path, named",
    [
        ("get", "/api/models/cache/stats?verbose=1", "verbose"),
        ("get", "/api/models/cache/metrics?hours=", "hours"),
        ("get", "/api/models/cache/metrics?hour=3", "hour"),
        ("post", "/api/models/{model_id}/cache/warm?force=1", "force"),
        ("post", "/api/models/{model_id}/cache/verify?deep=", "deep"),
    ],
)
def test_every_cache_endpoint_refuses_unknown_and_blank_parameters(manager_api, house_version, method, path, named):
    response = getattr(manager_api, method)(path.format(model_id=house_version.model_id))
    assert response.status_code == 400
    assert named in response.json()


def test_warm_and_verify_through_the_api_are_recorded(manager_api, manager, house_version):
    assert manager_api.post(f"/api/models/{house_version.model_id}/cache/warm").status_code == 200
    assert manager_api.post(f"/api/models/{house_version.model_id}/cache/verify").status_code == 200
    messages = list(LogEntry.objects.order_by("pk").values_list("user__username", "change_message"))
    assert messages[0] == ("manager", "warm: API: served from origin")
    assert messages[1][0] == "manager" and messages[1][1].startswith("verify: API: ") and "every file matches" in messages[1][1]


# --- admin: confirmation and history -------------------------------------------------------------------------


@pytest.mark.parametrize("action, asks", [("clear_cache", "Clear the cache?"),
                                          ("clear_cache_including_shared", "Clear the shared tier too?")])
def test_an_admin_clear_asks_first_then_clears_and_is_recorded(client, manager, house_version, action, asks):
    artifact_warm(artifact=house_version.artifact)
    client.force_login(manager)
    url = reverse("admin:predictions_modelversion_changelist")
    selection = {"action": action, "_selected_action": [str(house_version.pk)]}

    page = client.post(url, selection)
    assert page.status_code == 200
    html = page.content.decode()
    assert asks in html and "<li>house-prices v1</li>" in html
    assert 'name="post" value="yes"' in html and f'name="action" value="{action}"' in html
    assert generation(house_version) == 1  # nothing done yet
    assert not LogEntry.objects.exists()

    done = client.post(url, {**selection, "post": "yes"}, follow=True)
    assert done.status_code == 200
    assert generation(house_version) == 2
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_repr) == (manager, "house-prices v1")
    expected = "clear, shared tier included: " if action.endswith("shared") else "clear: "
    assert entry.change_message.startswith(expected) and "now generation 2" in entry.change_message


@pytest.mark.parametrize("action, recorded", [("warm_cache", "warm: fetched from origin"),
                                              ("verify_checksums", "verify: no disk copy on this node"),
                                              ("pin_artifacts", "pin: kept on disk"),
                                              ("unpin_artifacts", "unpin: evictable again")])
def test_every_other_admin_action_runs_at_once_and_is_recorded(client, manager, house_version, action, recorded):
    client.force_login(manager)
    response = client.post(
        reverse("admin:cache_app_artifact_changelist"),
        {"action": action, "_selected_action": [str(house_version.artifact_id)]},
    )
    assert response.status_code == 302
    entry = LogEntry.objects.get()
    assert entry.user == manager and entry.change_message.startswith(recorded)
    assert entry.content_type.model == "artifact" and entry.object_id == str(house_version.artifact_id)


def test_the_admin_shows_who_did_what_and_when(admin_client, admin_user, house_version):
    admin_client.post(
        reverse("admin:cache_app_artifact_changelist"),
        {"action": "pin_artifacts", "_selected_action": [str(house_version.artifact_id)]},
    )
    entry = LogEntry.objects.get()
    listing = admin_client.get(reverse("admin:admin_logentry_changelist")).content.decode()
    assert "pin: kept on disk" in listing and "house-prices v1" in listing and admin_user.username in listing
    history = admin_client.get(reverse("admin:cache_app_artifact_history", args=[house_version.artifact_id]))
    assert history.status_code == 200 and "pin: kept on disk" in history.content.decode()
    assert entry.action_time is not None
    assert admin_client.get(reverse("admin:admin_logentry_add")).status_code == 403  # a record, not editable


# --- limits ---------------------------------------------------------------------------------------------------


def limits_post(client, **values):
    limits = limits_current()
    form = {"disk_max_bytes": "10 GiB", "memory_max_bytes": "4 GiB", "memory_max_count": 8, "hit_rate_warning": 0.5}
    return client.post(reverse("admin:cache_app_cachelimits_change", args=[limits.pk]), {**form, **values})


def test_limits_take_human_units_and_the_change_is_recorded(admin_client, admin_user):
    form = admin_client.get(reverse("admin:cache_app_cachelimits_change", args=[limits_current().pk]))
    assert 'value="10 GiB"' in form.content.decode()  # shown as typed, not 10737418240

    response = limits_post(admin_client, disk_max_bytes="10 GB", memory_max_bytes="1.5GiB", hit_rate_warning=0.6)
    assert response.status_code == 302, response.content.decode()[:3000]
    limits = CacheLimits.objects.get()
    assert (limits.disk_max_bytes, limits.memory_max_bytes, limits.hit_rate_warning) == (10 * 1000**3, 3 * GIB // 2,
                                                                                        0.6)
    entry = LogEntry.objects.get()
    assert entry.user == admin_user
    assert entry.change_message == (
        "limits: Disk limit: 10 GiB -> 10 GB; Memory limit (per process): 4 GiB -> 1536 MiB; "
        "Hit-rate warning: 0.5 -> 0.6"
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("disk_max_bytes", "-1", "is not a size"),
        ("disk_max_bytes", "0", "below the minimum"),
        ("disk_max_bytes", "10 GG", "is not a size"),
        ("memory_max_bytes", "lots", "is not a size"),
        ("memory_max_count", "0", "greater than or equal to 1"),
        ("hit_rate_warning", "7", "less than or equal to 1"),
        ("hit_rate_warning", "-0.1", "greater than or equal to 0"),
    ],
)
def test_limits_refuse_nonsense_and_say_which_field(admin_client, field, value, message):
    before = CacheLimits.objects.values().get(pk=limits_current().pk)
    response = limits_post(admin_client, **{field: value})
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and message in errors[field][0]
    assert CacheLimits.objects.values().get() == before
    assert not LogEntry.objects.exists()
