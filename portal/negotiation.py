"""DRF content negotiation that remembers its verdicts.

The same Accept header against the same renderers always selects the same renderer, yet DRF parses the
header and ranks its media types on every request: for a one-row prediction that is a fair share of the
request's own cost. Verdicts are kept per (Accept header, renderer classes), a bounded number of them, since
the header is the client's to choose.
"""

import functools

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation

REMEMBERED_VERDICTS = 256


class RememberingContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE):
            return super().select_renderer(request, renderers, format_suffix)
        try:
            index, media_type = _verdict(request.META.get("HTTP_ACCEPT", "*/*"), tuple(map(type, renderers)))
        except exceptions.NotAcceptable:
            return super().select_renderer(request, renderers, format_suffix)  # raised with the view's renderers
        return renderers[index], media_type


class _AcceptOnly:
    """What ``DefaultContentNegotiation.select_renderer`` reads of a request without a format override."""

    def __init__(self, accept: str):
        self.query_params = {}
        self.headers = {"accept": accept}


@functools.lru_cache(maxsize=REMEMBERED_VERDICTS)
def _verdict(accept: str, renderer_classes: tuple) -> tuple[int, str]:
    renderers = [renderer_class() for renderer_class in renderer_classes]
    renderer, media_type = DefaultContentNegotiation().select_renderer(_AcceptOnly(accept), renderers)
    return renderers.index(renderer), media_type
