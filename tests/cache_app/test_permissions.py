"""Who may do what: every cache endpoint and every admin cache action, for every kind of user.

anonymous -> 401 (API) / sent to the login page (admin); signed in but not staff -> 403 / sent to the admin
login; staff without ``cache_app.manage_cache`` -> reads yes, changes no; staff with it -> everything.
Session requests must carry a CSRF token. ``client.login`` is given a request: django-axes checks every
authenticate() against the request's account and address, and refuses one without.
"""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.http import HttpRequest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cache_app.admin import ArtifactAdmin
from cache_app.models import Artifact, CacheEntry
from cache_app.services.maintenance import artifact_pin
from cache_app.services.serving import artifact_warm

ROLES = ["anonymous", "user", "staff", "manager"]
VIEW_PERMS = ["view_artifact", "view_cacheentry", "view_modelversion", "view_mlmodel"]


def make_user(django_user_model, role):
    if role == "anonymous":
        return None
    user = django_user_model.objects.create_user(role, password="pw-123456", is_staff=role in ("staff", "manager"))
    if user.is_staff:
        user.user_permissions.add(*Permission.objects.filter(codename__in=VIEW_PERMS))
    if role == "manager":
        user.user_permissions.add(Permission.objects.get(codename="manage_cache", content_type__app_label="cache_app"))
    return user


@pytest.fixture
def api_as(django_user_model):
    def build(role):
        client = APIClient()
        user = make_user(django_user_model, role)
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=user).key}")
        return client

    return build


# (name, method, path maker, is a change)
ENDPOINTS = [
    ("stats", "get", lambda v: "/api/models/cache/stats", False),
    ("metrics", "get", lambda v: "/api/models/cache/metrics?hours=2", False),
    ("clear all", "delete", lambda v: "/api/models/cache", True),
    ("clear one", "delete", lambda v: f"/api/models/cache?model_id={v.model_id}", True),
    ("warm", "post", lambda v: f"/api/models/{v.model_id}/cache/warm", True),
    ("verify", "post", lambda v: f"/api/models/{v.model_id}/cache/verify", True),
]
EXPECTED = {
    ("anonymous", False): 401, ("anonymous", True): 401,
    ("user", False): 403, ("user", True): 403,
    ("staff", False): 200, ("staff", True): 403,
    ("manager", False): 200, ("manager", True): 200,
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,method,path,change", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_api_matrix(api_as, house_version, role, name, method, path, change):
    generation = house_version.artifact.generation
    response = getattr(api_as(role), method)(path(house_version))

    assert response.status_code == EXPECTED[(role, change)], response.content
    if response.status_code == 401:
        assert response["WWW-Authenticate"] == "Bearer"
    artifact = Artifact.objects.get(pk=house_version.artifact_id)
    warmed = CacheEntry.objects.filter(artifact=artifact, tier="disk", state="ready").exists()
    if change and name.startswith("clear"):
        assert artifact.generation == (generation + 1 if role == "manager" else generation)
    if name == "warm":
        assert warmed == (role == "manager")


def test_token_keyword_also_works(django_user_model, house_version):
    user = make_user(django_user_model, "staff")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get("/api/models/cache/stats").status_code == 200


def test_a_bad_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.get("/api/models/cache/stats").status_code == 401


# --- session requests and CSRF ---------------------------------------------------------------------------

def test_session_delete_without_csrf_token_is_refused(django_user_model, house_version):
    make_user(django_user_model, "manager")
    client = Client(enforce_csrf_checks=True)
    assert client.login(request=HttpRequest(), username="manager", password="pw-123456")

    assert client.get("/api/models/cache/stats").status_code == 200  # reads need no token
    response = client.delete("/api/models/cache")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    response = client.post(f"/api/models/{house_version.model_id}/cache/warm")
    assert response.status_code == 403
    assert Artifact.objects.get(pk=house_version.artifact_id).generation == 1


def test_session_delete_with_csrf_token_is_accepted(django_user_model, house_version):
    make_user(django_user_model, "manager")
    client = Client(enforce_csrf_checks=True)
    client.login(request=HttpRequest(), username="manager", password="pw-123456")
    client.get(reverse("admin:index"))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value

    response = client.delete("/api/models/cache", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.json()["message"] == "All model cache cleared"
    assert Artifact.objects.get(pk=house_version.artifact_id).generation == 2


def test_admin_action_without_csrf_token_is_refused(django_user_model, house_version):
    make_user(django_user_model, "manager")
    client = Client(enforce_csrf_checks=True)
    client.login(request=HttpRequest(), username="manager", password="pw-123456")
    response = client.post(
        reverse("admin:cache_app_artifact_changelist"),
        {"action": "clear_cache", "_selected_action": [house_version.artifact_id]},
    )
    assert response.status_code == 403
    assert Artifact.objects.get(pk=house_version.artifact_id).generation == 1


# --- admin actions -----------------------------------------------------------------------------------------

ACTIONS = ["clear_cache", "clear_cache_including_shared", "warm_cache", "verify_checksums", "pin_artifacts",
           "unpin_artifacts"]
CHANGELISTS = {
    "artifact": ("admin:cache_app_artifact_changelist", lambda v: v.artifact_id),
    "version": ("admin:predictions_modelversion_changelist", lambda v: v.pk),
    "model": ("admin:predictions_mlmodel_changelist", lambda v: v.model_id),
}


def _state(version):
    artifact = Artifact.objects.get(pk=version.artifact_id)
    entry = CacheEntry.objects.filter(artifact=artifact, tier="disk").order_by("-pk").first()
    return {
        "generation": artifact.generation,
        "pinned": artifact.pinned,
        "entry": (entry.state, entry.verified_at) if entry else None,
    }


def _prepare(action, version):
    """Put the artifact in a state the action visibly changes."""
    if action in ("verify_checksums",):
        artifact_warm(artifact=version.artifact)
        CacheEntry.objects.filter(artifact=version.artifact).update(verified_at=None)
    if action == "unpin_artifacts":
        artifact_pin(artifact=version.artifact, pinned=True)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("changelist", list(CHANGELISTS))
@pytest.mark.parametrize("action", ACTIONS)
def test_admin_action_matrix(django_user_model, house_version, role, changelist, action):
    _prepare(action, house_version)
    client = Client()
    user = make_user(django_user_model, role)
    if user is not None:
        client.force_login(user)
    url_name, pk_of = CHANGELISTS[changelist]
    url = reverse(url_name)
    before = _state(house_version)

    listing = client.get(url)
    # "post": the confirmation page's answer, so clears run here (their confirmation is tested elsewhere).
    response = client.post(url, {"action": action, "_selected_action": [pk_of(house_version)], "post": "yes"})

    after = _state(house_version)
    if role in ("anonymous", "user"):
        assert listing.status_code == 302 and "/admin/login/" in listing["Location"]
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        assert after == before
    elif role == "staff":
        assert listing.status_code == 200
        assert f'value="{action}"' not in listing.content.decode()  # not offered
        assert response.status_code == 200  # the list again, nothing done
        assert after == before
    else:
        assert listing.status_code == 200
        assert f'value="{action}"' in listing.content.decode()
        assert response.status_code == 302
        assert after != before
        expected = {
            "clear_cache": lambda: after["generation"] == before["generation"] + 1,
            "clear_cache_including_shared": lambda: after["generation"] == before["generation"] + 1,
            "warm_cache": lambda: after["entry"] is not None and after["entry"][0] == "ready",
            "verify_checksums": lambda: after["entry"][1] is not None,
            "pin_artifacts": lambda: after["pinned"] is True,
            "unpin_artifacts": lambda: after["pinned"] is False,
        }[action]
        assert expected()


@pytest.mark.parametrize("role,allowed", [("staff", False), ("manager", True)])
def test_has_manage_cache_permission(django_user_model, rf, role, allowed):
    from django.contrib import admin

    request = rf.get("/")
    request.user = make_user(django_user_model, role)
    assert ArtifactAdmin(Artifact, admin.site).has_manage_cache_permission(request) is allowed


def test_dashboard_needs_staff_but_not_manage_cache(django_user_model):
    client = Client()
    client.force_login(make_user(django_user_model, "staff"))
    assert client.get(reverse("web:cache-dashboard")).status_code == 200
