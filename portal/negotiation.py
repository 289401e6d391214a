"""DRF content negotiation that remembers its verdicts.

The same Accept header against the same renderers always selects the same renderer, yet DRF parses the
header and ranks its media types on every request: for a one-row prediction that is a fair share of the
request's own cost. Verdicts are kept per (Accept header, renderer classes), a bounded number of them, since
the header is the client's to choose. A ``?format=`` no renderer has is a 400 naming the parameter.
"""

import functools

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation

REMEMBERED_VERDICTS = 256


class RememberingContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if format_suffix:
            return super().select_renderer(request, renderers, format_suffix)
        if requested := request.query_params.get(self.settings.URL_FORMAT_OVERRIDE):
            _format_check(requested, renderers, name=self.settings.URL_FORMAT_OVERRIDE)
            return super().select_renderer(request, renderers, format_suffix)
        try:
            index, media_type = _verdict(request.META.get("HTTP_ACCEPT", "*/*"), tuple(map(type, renderers)))
        except exceptions.NotAcceptable:
            return super().select_renderer(request, renderers, format_suffix)  # raised with the view's renderers
        return renderers[index], media_type


def _format_check(requested: str, renderers, *, name: str) -> None:
    """A 400 naming the parameter and what it may be, where DRF answers 404 (for a URL suffix, which this is not).

    400 rather than 406: a query parameter with a value the endpoint does not take is bad input, as any other
    parameter's would be; 406 stays the answer to an Accept header nothing here satisfies.
    """
    formats = list(dict.fromkeys(renderer.format for renderer in renderers))
    if requested not in formats:
        raise exceptions.ValidationError(
            {name: [f"{requested[:40]!r} is not a format this endpoint answers in; use one of: {', '.join(formats)}"]}
        )


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
