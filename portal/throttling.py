"""Who is asking, and how often they may: the client address behind the proxy, and the API's rate limits.

Login attempts are limited by django-axes (settings ``AXES_*``), the API by the throttles below (DRF), batch
jobs per user by ``predictions.jobs.limits``.
"""

from django.conf import settings
from rest_framework import throttling


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or, behind ``PORTAL_PROXY_COUNT`` proxies, the address the
    outermost of them saw (taken from the right of X-Forwarded-For, where no client can forge it).

    The same rule DRF's throttles follow with ``NUM_PROXIES``, so logins and API calls count one address alike.
    """
    proxies = settings.PORTAL_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR")


class UserRateThrottle(throttling.UserRateThrottle):
    """Per signed-in user (token or session). The rate is read per request: DRF's own classes read it once
    at import, which a settings override (or a test) could not change."""

    def get_rate(self):
        return settings.API_THROTTLE_USER


class AnonRateThrottle(throttling.AnonRateThrottle):
    """Per address, for calls without credentials."""

    def get_rate(self):
        return settings.API_THROTTLE_ANON
