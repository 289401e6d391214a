"""The web UI in a real chromium (Playwright) against pytest-django's live server.

The live server runs in a thread of this process, so the in-memory tier is shared with the test: the second
prediction is served from memory as it would be by a long-lived worker.
"""

import csv
import io

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOUSES = [
    {"sqft": "1200", "bedrooms": "2", "age_years": "30", "city": "austin"},
    {"sqft": "2400.5", "bedrooms": "4", "age_years": "5", "city": "boston"},
    {"sqft": "900", "bedrooms": "1", "age_years": "60", "city": "denver"},
    {"sqft": "3100", "bedrooms": "5", "age_years": "2", "city": "chicago"},
]


def test_sign_in_predict_upload_and_download(page, live_server, house_version, churn_version,
                                             django_user_model, tmp_path, screenshots_dir):
    django_user_model.objects.create_user(username="ada", password="pw-ada-123", is_staff=True)

    # Anonymous: the catalog sends us to the login page.
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url
    page.screenshot(path=str(screenshots_dir / "login.png"))
    page.fill("#id_username", "ada")
    page.fill("#id_password", "pw-ada-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    # The catalog: both models, nothing cached yet, the staff links and the user in the header.
    catalog = page.locator("#catalog")
    assert catalog.locator("tr[data-model=house-prices]").count() == 1
    assert catalog.locator("tr[data-model=customer-churn]").count() == 1
    assert catalog.locator(".tier-none").count() == 2
    header = page.locator("header").inner_text()
    assert "Model Cache Portal" in header and "ada" in header and "Dashboard" in header and "Admin" in header
    page.screenshot(path=str(screenshots_dir / "catalog.png"), full_page=True)

    # The model page: a form generated from the schema.
    page.click("a.model-link:has-text('house-prices')")
    page.wait_for_url("**/models/house-prices/")
    assert page.locator("#id_sqft").get_attribute("type") == "number"
    assert page.locator("#id_city").evaluate("el => el.tagName") == "SELECT"
    page.fill("#id_sqft", "1850.5")
    page.fill("#id_bedrooms", "3")
    page.fill("#id_age_years", "12")
    page.select_option("#id_city", "boston")
    page.click("#predict-button")
    page.wait_for_selector("#result")

    # First time: fetched from origin, with a timing for each step.
    served = page.locator("#result .served-from")
    assert served.inner_text().strip() == "origin"
    first_value = float(page.locator("#prediction-value").inner_text())
    assert first_value > 0
    timings = page.locator("#result .timing-list").inner_text()
    for step in ("FETCH", "LOAD", "PREDICT", "TOTAL"):
        assert step in timings.upper()
    assert page.input_value("#id_sqft") == "1850.5"

    # Second time: the predictor is in memory.
    page.click("#predict-button")
    page.wait_for_selector("#result .served-from:has-text('memory')")
    assert float(page.locator("#prediction-value").inner_text()) == first_value
    assert "memory" in page.locator("#model-tiers").inner_text()
    page.locator("#result").screenshot(path=str(screenshots_dir / "result-panel.png"))
    page.screenshot(path=str(screenshots_dir / "model-page.png"), full_page=True)

    # A CSV batch: a table with one row per input row.
    upload = tmp_path / "houses.csv"
    with upload.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(HOUSES[0]))
        writer.writeheader()
        writer.writerows(HOUSES)
    page.set_input_files("#id_file", str(upload))
    page.click("#csv-button")
    page.wait_for_selector("#csv-results")
    assert page.locator("#results-table tbody tr").count() == len(HOUSES)
    assert page.locator("#csv-results .served-from").inner_text().strip() == "memory"
    headers = page.locator("#results-table thead th").all_inner_texts()
    assert headers == ["row", "sqft", "bedrooms", "age_years", "city", "prediction", "warnings"]
    page.locator("#csv-results").screenshot(path=str(screenshots_dir / "csv-results.png"))

    # The download: the same rows with their predictions.
    with page.expect_download() as info:
        page.click("#csv-download")
    download = info.value
    assert download.suggested_filename == "house-prices-v1-predictions.csv"
    saved = tmp_path / "downloaded.csv"
    download.save_as(str(saved))
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [row["city"] for row in rows] == [house["city"] for house in HOUSES]
    assert [float(row["sqft"]) for row in rows] == [float(house["sqft"]) for house in HOUSES]
    assert all(float(row["prediction"]) > 0 for row in rows)
    shown = [float(text) for text in page.locator("#results-table tbody tr td:nth-child(6)").all_inner_texts()]
    assert shown == [float(row["prediction"]) for row in rows]

    # Bad input in the browser: the error names the field, nothing is predicted.
    page.goto(live_server.url + "/models/customer-churn/")
    page.fill("#id_tenure_months", "14")
    page.fill("#id_monthly_spend", "59.9")
    page.select_option("#id_plan", "plus")
    page.fill("#id_support_calls", "1e39")  # a blank would be a missing value; this is out of range
    page.click("#predict-button")
    page.wait_for_selector("#form-errors")
    errors = page.locator("#form-errors").inner_text()
    assert "support_calls" in errors and "out of range" in errors, errors
    assert page.locator("#result").count() == 0
    page.locator("#predict-form-card").screenshot(path=str(screenshots_dir / "form-errors.png"))

    # A classifier shows its class probabilities.
    page.fill("#id_support_calls", "2")
    page.click("#predict-button")
    page.wait_for_selector("#probabilities")
    labels = {str(label) for label in churn_version.class_labels}
    assert page.locator("#prediction-value").inner_text().strip() in labels
    assert page.locator("#probabilities tbody tr").count() == len(labels)
    page.locator("#result").screenshot(path=str(screenshots_dir / "classifier-result.png"))

    # Sign out through the header's POST form.
    page.click("header button:has-text('Sign out')")
    page.wait_for_url("**/accounts/login/")
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url


def test_warnings_show_beside_the_field_and_the_row(page, live_server, house_version, django_user_model, tmp_path,
                                                   screenshots_dir):
    django_user_model.objects.create_user(username="bo", password="pw-bo-123")
    page.goto(live_server.url + "/models/house-prices/")
    page.fill("#id_username", "bo")
    page.fill("#id_password", "pw-bo-123")
    page.click("button[type=submit]")
    page.wait_for_url("**/models/house-prices/")

    # Out of the training range, and a blank field: predicted, each said beside its field.
    page.fill("#id_sqft", "-5")
    page.fill("#id_bedrooms", "3")
    page.select_option("#id_city", "boston")
    page.click("#predict-button")
    page.wait_for_selector("#result")
    assert "below the smallest value seen in training" in page.locator(".field-warning[data-field=sqft]").inner_text()
    assert "filled in by the model" in page.locator(".field-note[data-field=age_years]").inner_text()
    assert "age_years" in page.locator("#filled-in").inner_text()
    page.screenshot(path=str(screenshots_dir / "form-warnings.png"), full_page=True)

    # A CSV whose second row is out of range: the preview marks that row and says why.
    upload = tmp_path / "houses.csv"
    upload.write_text("sqft,bedrooms,age_years,city\n1200,2,30,austin\n99999,2,30,denver\n")
    page.set_input_files("#id_file", str(upload))
    page.click("#csv-button")
    page.wait_for_selector("#csv-results")
    assert page.locator("#results-table tbody tr.warned").count() == 1
    assert page.locator("#results-table tbody tr.warned td").first.inner_text() == "2"
    assert "row 2" in page.locator("#csv-warnings").inner_text()
    page.locator("#csv-results").screenshot(path=str(screenshots_dir / "csv-warnings.png"))
