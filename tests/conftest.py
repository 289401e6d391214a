"""Fixtures shared by the whole suite. Real servers live in tests/servers.py; real models in tests/models.py."""

import os

import pytest

pytest_plugins = ["tests.servers", "tests.models", "tests.browser"]


def pytest_collection_modifyitems(config, items):
    # CI (and anyone who sets PORTAL_REQUIRE_SERVICES) must not pass by skipping: a skip becomes a failure.
    config._portal_require_services = bool(os.environ.get("CI") or os.environ.get("PORTAL_REQUIRE_SERVICES"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and getattr(item.config, "_portal_require_services", False):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every service must be present: {report.longrepr}"


@pytest.fixture(autouse=True)
def isolated_cache(settings, tmp_path):
    """Every test gets its own cache folder, origin folder, results folder and node name, and a fresh
    in-process state."""
    from cache_app.services import runtime

    settings.MODEL_CACHE_DIR = tmp_path / "model_cache"
    settings.MODEL_ORIGIN_URI = (tmp_path / "origin").as_uri()
    settings.MODEL_SHARED_URI = ""
    settings.NODE_NAME = "test-node"
    # Logs written in the request, so a test can read them at once (tests of the buffer turn it back on).
    settings.PREDICTION_LOG_BUFFER = False
    results = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "results")}}
    settings.STORAGES = {**settings.STORAGES, "results": results}
    # Every per-process part afresh, cached lookups included: test databases reuse primary keys.
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture(autouse=True)
def throttle_counts_reset():
    """The API throttles count in Django's (local-memory) cache: every test starts from none."""
    from django.core.cache import cache

    cache.clear()
    yield
