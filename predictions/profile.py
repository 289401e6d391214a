"""The profile page: every signed-in user creates and rotates their own API token (no admin needed)."""

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token


def token_rotate(*, user) -> Token:
    """A new token for ``user``; the old one, if any, stops working (here at once, elsewhere within the
    lookup cache's TTL)."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    created = None
    if request.method == "POST":
        created = token_rotate(user=request.user)
    token = created or Token.objects.filter(user=request.user).first()
    return render(request, "predictions/profile.html", {"token": token, "created": created})
