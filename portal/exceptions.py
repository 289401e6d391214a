"""One place that turns the services' exceptions into HTTP answers, so views stay thin and no error is a 500."""

import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
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
        # The database is unreachable (a restart, a failover): a fault of ours to wait out, not of the request.
        logger.warning("database unavailable: %s", exc)
        return Response({"detail": f"the database cannot be reached: {exc}", "code": "database_unavailable"},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, ArtifactUnavailable | JobQueueUnavailable | ResultStorageUnavailable):
        logger.warning("unavailable: %s", exc)
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        if isinstance(codes, str):  # a single error: say which, as the 503s do
            response.data.setdefault("code", codes)
    return response
