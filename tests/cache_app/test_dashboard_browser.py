"""A staff member in real chromium: signs in, clears a cached model with the admin action, sees the dashboard."""

import pandas as pd
import pytest
from django.contrib.auth.models import Permission

from cache_app.models import Artifact
from predictions.models import ModelVersion
from predictions.services import prediction_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOUSE = {"sqft": 1850.0, "bedrooms": 3, "age_years": 12.0, "city": "austin"}
PERMS = ["manage_cache", "view_artifact", "view_cacheentry", "view_fetchrecord", "view_mlmodel",
         "view_modelversion"]


def predict(version):
    # Read the version afresh, as each API request does: a clear bumps the artifact's generation in the database.
    version = ModelVersion.objects.select_related("artifact", "model").get(pk=version.pk)
    return prediction_run(version=version, frame=pd.DataFrame([HOUSE]))


def sign_in(page, live_server, django_user_model):
    user = django_user_model.objects.create_user("operator", password="pw-operator-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=PERMS))
    page.goto(live_server.url + "/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw-operator-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#cache-dashboard-link")


def test_clear_from_the_admin_then_the_dashboard(page, live_server, django_user_model, house_version, screenshots_dir):
    sign_in(page, live_server, django_user_model)

    assert predict(house_version).served_from == "origin"
    cached = predict(house_version)
    assert cached.served_from == "memory" and cached.from_cache

    # The version list says where it is cached; the clear action is offered and reports what it did.
    page.goto(live_server.url + "/admin/predictions/modelversion/")
    row = page.locator("#result_list tbody tr", has_text="house-prices v1")
    assert "memory, disk" in row.inner_text()
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "clear_cache")
    page.click("button[name=index]")
    # A clear costs every node a download: the admin asks first, naming what would go.
    assert "house-prices v1" in page.locator("#clear-targets").inner_text()
    page.click("input[type=submit][value^='Yes, clear']")
    message = page.locator("ul.messagelist li.success")
    message.wait_for()
    assert "Cleared house-prices v1" in message.inner_text()
    assert "1 dropped from memory" in message.inner_text()
    assert Artifact.objects.get(pk=house_version.artifact_id).generation == 2
    page.screenshot(path=str(screenshots_dir / "after-clear.png"), full_page=True)

    # The next prediction goes back to a remote tier.
    again = predict(house_version)
    assert again.served_from == "origin" and not again.from_cache
    for _ in range(4):
        assert predict(house_version).served_from == "memory"

    # The dashboard, reached from the admin index, draws both charts from the locally served Chart.js.
    page.goto(live_server.url + "/admin/")
    page.click("#cache-dashboard-link a")
    page.wait_for_selector("body[data-charts-ready=true]")
    assert page.evaluate("typeof Chart") == "function"
    for canvas in ("hit-rate-chart", "disk-chart"):
        assert page.evaluate(f"Chart.getChart('{canvas}') !== undefined"), canvas
        # A drawn canvas has coloured pixels; a blank one is all transparent.
        painted = page.evaluate(
            f"""() => {{
                const c = document.getElementById('{canvas}');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                return n;
            }}"""
        )
        assert painted > 1000, canvas
    datasets = page.evaluate("Chart.getChart('hit-rate-chart').data.datasets.map(d => d.label)")
    assert {"memory", "disk", "origin"} <= set(datasets)
    fetches = page.locator("#recent-fetches tbody tr")
    assert fetches.count() == 2
    assert "origin" in fetches.first.inner_text() and "house-prices v1" in fetches.first.inner_text()
    assert "house-prices v1" in page.locator("#top-by-size").inner_text()
    # 5 memory hits against 2 disk misses (the two origin fetches): 71 %, over the default 50 % warning level.
    assert page.locator("#overall-hit-rate").inner_text() == "71%"
    assert page.locator("#hit-rate-warning").count() == 0
    page.screenshot(path=str(screenshots_dir / "dashboard.png"), full_page=True)


def test_dashboard_warns_when_the_hit_rate_is_low(page, live_server, django_user_model, house_version, screenshots_dir):
    sign_in(page, live_server, django_user_model)
    page.screenshot(path=str(screenshots_dir / "admin-index.png"), full_page=True)
    predict(house_version)  # one lookup, a miss: 0 %

    page.goto(live_server.url + "/admin/cache/dashboard/?hours=1")
    page.wait_for_selector("body[data-charts-ready=true]")
    warning = page.locator("#hit-rate-warning")
    assert warning.is_visible()
    assert "under the warning level of 50%" in warning.inner_text()
    page.screenshot(path=str(screenshots_dir / "dashboard-warning.png"), full_page=True)
