"""Throttling and fairness: sign-in attempts per account and per address (django-axes) on both login pages,
API rates per user and per address (DRF throttles), and a bound on each user's queued and running jobs."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import demo
from predictions.jobs import services as job_services
from predictions.jobs.limits import TooManyJobs, job_limit_check
from predictions.models import BatchJob

PASSWORD = "correct horse battery"
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def people(django_user_model):
    # Staff, so that a successful sign-in is a redirect on the admin's login page as well.
    return {
        name: django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        for name in ("ada", "bob", "cyd")
    }


def sign_in(client, page, username, password, address):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_an_account_is_locked_after_the_failure_limit_from_any_address(client, people, page, settings):
    settings.AXES_FAILURE_LIMIT = 5
    # Each from another address: only the account is common to them. The fifth failure locks.
    statuses = [sign_in(client, page, "ada", "wrong", f"127.0.1.{attempt}").status_code for attempt in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    locked = sign_in(client, page, "ada", PASSWORD, "127.0.2.1")  # the right password, a fresh address
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # The lock is on ada: bob signs in from that same fresh address.
    assert sign_in(client, page, "bob", PASSWORD, "127.0.2.1").status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_an_address_is_locked_after_the_failure_limit_whatever_the_account(client, people, page, settings):
    settings.AXES_FAILURE_LIMIT = 5
    # Each for another account name: only the address is common to them.
    statuses = [sign_in(client, page, f"guess{attempt}", "wrong", "127.0.3.1").status_code for attempt in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert sign_in(client, page, "ada", PASSWORD, "127.0.3.1").status_code == 429
    assert sign_in(client, page, "ada", PASSWORD, "127.0.3.2").status_code == 302  # ada from elsewhere is fine


@pytest.mark.django_db
def test_fifty_wrong_passwords_then_the_right_one_does_not_sign_in(client, people):
    """The issue's report, with the default settings: 50 wrong passwords, then the right one."""
    statuses = [sign_in(client, "/accounts/login/", "cyd", f"guess-{n}", "127.0.4.1").status_code for n in range(50)]
    assert statuses[:4] == [200] * 4 and set(statuses[4:]) == {429}
    assert sign_in(client, "/accounts/login/", "cyd", PASSWORD, "127.0.4.1").status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_behind_a_proxy_the_forwarded_address_counts_and_a_forged_one_does_not(client, people, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.PORTAL_PROXY_COUNT = 1
    # nginx appends the address it saw to whatever X-Forwarded-For the client sent: the last entry counts.
    for guess in ("g1", "g2"):
        client.post("/accounts/login/", {"username": guess, "password": "x"}, REMOTE_ADDR="127.0.0.1",
                    HTTP_X_FORWARDED_FOR="127.9.9.9, 127.0.5.1")
    attacker = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.5.1"}
    assert client.post("/accounts/login/", {"username": "ada", "password": PASSWORD}, **attacker).status_code == 429
    # Another client behind the same proxy is not locked out with the attacker.
    other = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.5.2"}
    assert client.post("/accounts/login/", {"username": "ada", "password": PASSWORD}, **other).status_code == 302


# --- API throttles ---------------------------------------------------------------------------------------------


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=user).key}")
    return client


@pytest.mark.django_db
def test_the_api_throttles_each_user_at_the_configured_rate(people, settings):
    settings.API_THROTTLE_USER = "3/minute"
    ada, bob = token_client(people["ada"]), token_client(people["bob"])
    assert [ada.get("/api/models/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = ada.get("/api/models/")
    assert throttled.status_code == 429
    assert "throttled" in throttled.json()["detail"].lower() and int(throttled["Retry-After"]) > 0
    assert bob.get("/api/models/").status_code == 200  # another user has their own allowance


@pytest.mark.django_db
def test_the_api_throttles_anonymous_calls_per_address(settings):
    settings.API_THROTTLE_ANON = "2/minute"
    client = APIClient()
    assert [client.get("/api/schema/", REMOTE_ADDR="127.0.6.1").status_code for _ in range(2)] == [200, 200]
    assert client.get("/api/schema/", REMOTE_ADDR="127.0.6.1").status_code == 429
    assert client.get("/api/schema/", REMOTE_ADDR="127.0.6.2").status_code == 200


@pytest.mark.django_db
def test_an_empty_rate_means_no_throttle(people, settings):
    settings.API_THROTTLE_USER = None
    ada = token_client(people["ada"])
    assert {ada.get("/api/models/").status_code for _ in range(30)} == {200}


# --- jobs per user -----------------------------------------------------------------------------------------------


def csv_upload(rows: int = 5) -> SimpleUploadedFile:
    return SimpleUploadedFile("rows.csv", demo.house_prices(rows, seed=1).to_csv(index=False).encode(), "text/csv")


@pytest.fixture
def two_queued_jobs(people, house_version, settings):
    settings.PREDICT_JOB_MAX_ACTIVE_PER_USER = 2
    settings.REDIS_URL = ""
    data = demo.house_prices(5, seed=1).to_csv(index=False).encode()
    return [job_services.job_create(version=house_version, data=data, user=people["ada"]) for _ in range(2)]


def test_a_user_at_the_job_limit_gets_a_429_saying_why_from_the_api(two_queued_jobs, people):
    response = token_client(people["ada"]).post("/api/jobs/", {"file": csv_upload(), "model": "house-prices"},
                                                format="multipart")
    assert response.status_code == 429
    assert response.json() == {
        "detail": "you have 2 batch jobs queued or running and the limit per user is 2: "
        "submit this one when one of them has finished",
        "code": "too_many_jobs",
    }
    assert BatchJob.objects.count() == 2


def test_a_user_at_the_job_limit_gets_a_429_saying_why_on_the_jobs_page(two_queued_jobs, people, client):
    client.force_login(people["ada"])
    response = client.post("/jobs/", {"model": "house-prices", "file": csv_upload()})
    assert response.status_code == 429
    assert "you have 2 batch jobs queued or running and the limit per user is 2" in response.content.decode()
    assert BatchJob.objects.count() == 2


def test_the_limit_is_per_user_and_frees_up_when_a_job_ends(two_queued_jobs, people):
    with pytest.raises(TooManyJobs):
        job_limit_check(user=people["ada"])
    job_limit_check(user=people["bob"])  # bob has none running: not held back by ada's
    job_services.job_fail(job_id=two_queued_jobs[0].pk, message="stopped")
    job_limit_check(user=people["ada"])  # one left of two: ada may submit again
