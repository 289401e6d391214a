import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("scientist", password="correct horse battery")


@pytest.fixture
def api(user):
    """An API client sending the seeds' ``Authorization: Bearer <token>``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=user).key}")
    return client


HOUSE = {"sqft": 1800.0, "bedrooms": 3, "age_years": 12, "city": "boston"}
CHURN = {"tenure_months": 3, "monthly_spend": 99.5, "support_calls": 7, "plan": "basic"}


@pytest.fixture
def signed_in(client, user):
    """A browser session (Django's test client) signed in as a plain user."""
    client.force_login(user)
    return client
