"""One place that turns the services' exceptions into HTTP answers, so views stay thin and no error is a 500."""

import logging

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    from cache_app.services.errors import ArtifactUnavailable
    from predictions.inputs import InvalidInput

    if isinstance(exc, InvalidInput):
        return Response({"detail": "invalid input", "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ArtifactUnavailable):
        logger.warning("model unavailable: %s", exc)
        return Response({"detail": str(exc), "code": exc.code}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    return exception_handler(exc, context)
