"""For everyone: API tokens on the profile page; a CSV too big to predict inline goes to a batch job; the
catalog, a model page with a result and the jobs page fit a 390 px wide phone (chromium)."""

import pytest
from rest_framework.authtoken.models import Token

from tests.predictions.conftest import HOUSE

PHONE = {"width": 390, "height": 844}
# What sticks out, named in a failure.
WIDE = """() => Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 391)
  .slice(0, 12).map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""


def test_a_user_creates_then_rotates_their_own_token_and_the_old_one_stops_working(signed_in, user, house_version):
    assert b'id="no-token"' in signed_in.get("/profile/").content

    created = signed_in.post("/profile/").content.decode()
    first = Token.objects.get(user=user).key
    assert first in created
    assert f"Bearer {first}" and signed_in.get("/profile/").content.decode().count(first) == 0  # shown once

    rotated = signed_in.post("/profile/").content.decode()
    second = Token.objects.get(user=user).key
    assert second != first and second in rotated

    from rest_framework.test import APIClient

    def predict(key):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client.post("/api/models/house-prices/predict", {"features": HOUSE}, format="json").status_code

    assert (predict(first), predict(second)) == (401, 200)


def test_the_profile_page_needs_a_sign_in(client, db):
    assert "/accounts/login/" in client.get("/profile/")["Location"]


def _fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(WIDE) if width > PHONE["width"] else []
    assert width <= PHONE["width"], f"{page.url} is {width}px wide at {PHONE['width']}px: {wide}"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_phone_width_pages_fit_and_a_big_csv_becomes_a_job(chromium, live_server, house_version, django_user_model,
                                                           settings, tmp_path, screenshots_dir):
    django_user_model.objects.create_user(username="ada", password="pw-ada-123")
    settings.PREDICT_MAX_UPLOAD_BYTES = 400  # a few rows are "too big" to predict inline
    settings.PREDICT_JOB_CHUNK_ROWS = 10  # and a job predicts them in chunks under that limit
    settings.REDIS_URL = ""  # the job runs in a thread of this server (no Celery worker here)
    context = chromium.new_context(viewport=PHONE, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(live_server.url + "/accounts/login/")
        page.fill("#id_username", "ada")
        page.fill("#id_password", "pw-ada-123")
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + "/")
        _fits(page)
        page.screenshot(path=str(screenshots_dir / "catalog-390.png"), full_page=True)
        assert page.locator("nav a:has-text('Jobs')").count() == 1

        page.goto(live_server.url + "/models/house-prices/")
        for name, value in HOUSE.items():
            if name == "city":
                page.select_option(f"#id_{name}", value)
            else:
                page.fill(f"#id_{name}", str(value))
        page.click("#predict-button")
        page.wait_for_selector("#result")
        _fits(page)
        page.screenshot(path=str(screenshots_dir / "model-result-390.png"), full_page=True)

        rows = "sqft,bedrooms,age_years,city\n" + "".join(f"{1000 + i},3,12,boston\n" for i in range(60))
        big = tmp_path / "houses.csv"
        big.write_text(rows)
        page.set_input_files("#csv-form input[type=file]", str(big))
        page.wait_for_selector("#job-offer.alert")
        assert "over the limit" in page.locator("#job-offer-text").inner_text()
        assert page.locator("#csv-button").is_disabled()
        page.screenshot(path=str(screenshots_dir / "job-offer-390.png"), full_page=True)
        page.click("#job-offer-button")
        page.wait_for_url("**/jobs/*/")
        page.wait_for_selector("text=succeeded")
        _fits(page)
        page.screenshot(path=str(screenshots_dir / "job-390.png"), full_page=True)

        page.goto(live_server.url + "/jobs/")
        _fits(page)
        page.screenshot(path=str(screenshots_dir / "jobs-390.png"), full_page=True)
        page.goto(live_server.url + "/profile/")
        _fits(page)
    finally:
        context.close()
