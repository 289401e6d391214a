"""The curl calls existing clients make, over real HTTP, answer in the shapes those clients read.

    curl -X GET http://localhost:8000/api/models/cache/stats -H "Authorization: Bearer <token>"
    curl -X DELETE http://localhost:8000/api/models/cache -H "Authorization: Bearer <token>"
    DELETE /api/models/cache?model_id=XXX
"""

import pytest
import requests
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db(transaction=True)

HOUSE = {"sqft": 1850.0, "bedrooms": 3, "age_years": 12.0, "city": "austin"}


@pytest.fixture
def http(live_server, django_user_model):
    """A requests session speaking to the live server as a staff user holding manage_cache."""
    user = django_user_model.objects.create_user("operator", password="pw-123456", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_cache", content_type__app_label="cache_app"))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {Token.objects.create(user=user).key}"

    class Http:
        def __getattr__(self, method):
            return lambda path, **kw: session.request(method.upper(), live_server.url + path, timeout=120, **kw)

    return Http()


def stats(http) -> dict:
    response = http.get("/api/models/cache/stats")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_stats_shape_on_an_empty_cache(http, settings):
    body = stats(http)
    assert set(body) == {"cache_stats", "message"}
    assert {"total_models", "total_size_mb", "cache_dir"} <= set(body["cache_stats"])
    assert body["cache_stats"]["total_models"] == 0
    assert body["cache_stats"]["total_size_mb"] == 0
    assert body["cache_stats"]["cache_dir"] == str(settings.MODEL_CACHE_DIR)
    assert body["message"] == "Cache contains 0 models using 0.0 MB"


def test_clear_all_shape(http, house_version):
    response = http.delete("/api/models/cache")
    assert response.status_code == 200
    assert response.json()["message"] == "All model cache cleared"


def test_clear_one_shape_by_id_and_by_name(http, house_version):
    model_id = house_version.model_id
    response = http.delete(f"/api/models/cache?model_id={model_id}")
    assert response.status_code == 200
    assert response.json()["message"] == f"Cache cleared for model {model_id}"

    response = http.delete("/api/models/cache", params={"model_id": "house-prices"})
    assert response.json()["message"] == "Cache cleared for model house-prices"


def test_clear_unknown_model_is_404(http, house_version):
    response = http.delete("/api/models/cache?model_id=999999")
    assert response.status_code == 404
    assert http.delete("/api/models/cache?model_id=no-such-model").status_code == 404


def test_predict_then_stats_then_clear_then_predict_again(http, house_version):
    model_id = house_version.model_id

    first = http.post(f"/api/models/{model_id}/predict", json={"features": HOUSE})
    assert first.status_code == 200, first.text
    first = first.json()
    assert first["from_cache"] is False and first["served_from"] == "origin"
    assert isinstance(first["prediction"], float) and first["uses_real_model"] is True

    body = stats(http)
    assert body["cache_stats"]["total_models"] == 1
    size = body["cache_stats"]["total_size_mb"]
    assert size > 0
    assert body["message"] == f"Cache contains 1 models using {size} MB"

    second = http.post(f"/api/models/{model_id}/predict", json={"features": HOUSE}).json()
    assert second["from_cache"] is True and second["served_from"] == "memory"
    assert second["prediction"] == first["prediction"]

    cleared = http.delete(f"/api/models/cache?model_id={model_id}")
    assert cleared.json()["message"] == f"Cache cleared for model {model_id}"
    body = stats(http)
    assert body["cache_stats"]["total_models"] == 0
    assert body["message"] == "Cache contains 0 models using 0.0 MB"

    third = http.post(f"/api/models/{model_id}/predict", json={"features": HOUSE}).json()
    assert third["from_cache"] is False and third["served_from"] == "origin"
    assert third["prediction"] == first["prediction"]
    assert stats(http)["cache_stats"]["total_models"] == 1

    assert http.delete("/api/models/cache").json() == {"message": "All model cache cleared", "artifacts_cleared": 1}
    assert stats(http)["cache_stats"]["total_models"] == 0
    fourth = http.post(f"/api/models/{model_id}/predict", json={"features": HOUSE}).json()
    assert fourth["from_cache"] is False


def test_without_a_token_the_seed_calls_are_401(live_server, db):
    for method, path in [("GET", "/api/models/cache/stats"), ("DELETE", "/api/models/cache")]:
        response = requests.request(method, live_server.url + path, timeout=30)
        assert response.status_code == 401
