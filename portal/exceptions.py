"""One place that turns the services' exceptions into HTTP answers, so views stay thin and no error is a 500."""

import logging
import sys

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    from cache_app.services.errors import ArtifactUnavailable
    from predictions.inputs import InvalidInput
    from predictions.jobs.dispatch import JobQueueUnavailable
    from predictions.result_files import ResultStorageUnavailable
    from predictions.selectors import NotFound

    if isinstance(exc, NotFound):
        return Response({"detail": str(exc), "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, InvalidInput):
        body = {"detail": "invalid input", "errors": exc.errors}
        if exc.omitted:
            body["errors_omitted"] = exc.omitted
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    # Django's own refusals while reading a body would otherwise be HTML error pages on a JSON API.
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": str(exc), "code": "body_too_large"}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response({"detail": str(exc), "code": "too_many_fields"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, OperationalError | InterfaceError):
        return Response(_database_unavailable(exc), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, ArtifactUnavailable | JobQueueUnavailable | ResultStorageUnavailable):
        logger.warning("unavailable: %s", exc)
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        if isinstance(codes, str):  # a single error: say which, as the 503s do
            response.data.setdefault("code", codes)
    return response


def server_error(request):
    """Django's ``handler500``: what DRF's handler never sees (web pages, the admin, middleware on any path).

    A database that cannot be reached is a 503 saying so there too, never a 500. The page is rendered
    without the request, whose context would query the database for the signed-in user.
    """
    error = sys.exc_info()[1]
    if not isinstance(error, OperationalError | InterfaceError):
        return defaults.server_error(request)
    body = _database_unavailable(error)
    if request.path.startswith("/api/"):
        return JsonResponse(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    page = render_to_string("database_unavailable.html", {"detail": body["detail"]})
    return HttpResponse(page, status=status.HTTP_503_SERVICE_UNAVAILABLE)


def _database_unavailable(error: Exception) -> dict:
    # The database is unreachable (a restart, a failover): a fault of ours to wait out, not of the request.
    logger.warning("database unavailable: %s", error)
    return {"detail": f"the database cannot be reached: {error}", "code": "database_unavailable"}
