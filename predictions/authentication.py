from rest_framework.authentication import TokenAuthentication, get_authorization_header


class BearerTokenAuthentication(TokenAuthentication):
    """DRF tokens sent as ``Authorization: Bearer <token>``, as the seeds' clients do; ``Token <key>`` works too."""

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
        return self.authenticate_credentials(key)
