"""The OpenAPI schema and docs page, and the Prometheus endpoint, answer without any outside asset."""

import pytest


@pytest.mark.django_db
def test_openapi_schema_lists_every_operation(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/models/",
        "/api/models/{model_ref}/predict",
        "/api/models/cache",
        "/api/models/cache/stats",
        "/api/models/cache/metrics",
        "/api/models/{model_ref}/cache/warm",
        "/api/jobs/",
    ):
        assert path in paths, path


@pytest.mark.django_db
def test_docs_page_serves_its_assets_locally(client):
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "https://" not in page.replace("https://github", "")


@pytest.mark.django_db
def test_metrics_endpoint_exposes_cache_counters(client, settings):
    from cache_app.services.stats import counters

    counters().record("memory", hits=3)
    body = client.get("/metrics").content.decode()
    assert 'model_cache_requests_total{outcome="hit",tier="memory"}' in body


@pytest.mark.django_db
def test_metrics_answer_get_and_head_only(settings):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # as a browser or scraper meets it
    assert client.get("/metrics").status_code == 200 and client.head("/metrics").status_code == 200
    for method in ("post", "put", "patch", "delete", "options", "trace"):
        response = client.generic(method.upper(), "/metrics")
        assert response.status_code == 405, (method, response.status_code)
        assert set(response["Allow"].split(", ")) == {"GET", "HEAD"}
