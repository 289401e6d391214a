from rest_framework.authentication import TokenAuthentication, get_authorization_header

from predictions import lookups


class BearerTokenAuthentication(TokenAuthentication):
    """DRF tokens sent as ``Authorization: Bearer <token>``, as the seeds' clients do; ``Token <key>`` works too.

    A known token costs no query: its user is kept in process (``predictions.lookups``), and a deleted token or
    a deactivated user stops working at once here and within ``PREDICT_LOOKUP_CACHE_SECONDS`` elsewhere.
    """

    keyword = "Bearer"
    keywords = (b"bearer", b"token")

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() not in self.keywords:
            return None
        try:
            key = parts[1].decode()
        except UnicodeError:
            return None
        return lookups.tokens.get(key, lambda: super(BearerTokenAuthentication, self).authenticate_credentials(key))
