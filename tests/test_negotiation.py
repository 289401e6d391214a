"""The API's content negotiation remembers verdicts: it must pick what DRF's own would, for any header."""

import pytest
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from portal.negotiation import RememberingContentNegotiation
from predictions.apis import CSVRenderer

HEADERS = [None, "*/*", "application/json", "text/csv", "text/csv, application/json", "application/json; indent=4",
           "text/*;q=0.5, application/json;q=0.9", "text/html", "text/csv;q=0.1, */*;q=0.2", "image/png",
           "application/json;q=0, text/csv", ", ,application/json", "x" * 300 + ", text/csv"]
RENDERER_SETS = [[JSONRenderer, CSVRenderer], [CSVRenderer, JSONRenderer], [JSONRenderer, BrowsableAPIRenderer]]


def _select(negotiation, accept, renderer_classes, query=""):
    extra = {"HTTP_ACCEPT": accept} if accept is not None else {}
    request = Request(APIRequestFactory().post(f"/api/models/1/predict{query}", **extra))
    renderers = [renderer_class() for renderer_class in renderer_classes]
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except exceptions.NotAcceptable:
        return "not acceptable"
    except Http404:  # a format no renderer has
        return "not found"
    return type(renderer), media_type, renderers.index(renderer)


@pytest.mark.parametrize("renderer_classes", RENDERER_SETS, ids=lambda classes: "+".join(c.__name__ for c in classes))
@pytest.mark.parametrize("accept", HEADERS)
def test_the_remembered_verdict_is_drfs_own_first_time_and_after(accept, renderer_classes):
    expected = _select(DefaultContentNegotiation(), accept, renderer_classes)
    remembering = RememberingContentNegotiation()
    assert _select(remembering, accept, renderer_classes) == expected
    assert _select(remembering, accept, renderer_classes) == expected  # from memory


@pytest.mark.parametrize("query", ["?format=csv", "?format=json"])
def test_a_format_override_is_negotiated_as_drf_does(query):
    classes = [JSONRenderer, CSVRenderer]
    expected = _select(DefaultContentNegotiation(), "application/json", classes, query)
    assert _select(RememberingContentNegotiation(), "application/json", classes, query) == expected


def test_a_format_no_renderer_has_is_a_400_naming_the_parameter_and_the_formats():
    assert _select(DefaultContentNegotiation(), "application/json", [JSONRenderer, CSVRenderer], "?format=xml") == (
        "not found"
    )
    with pytest.raises(exceptions.ValidationError) as refused:
        _select(RememberingContentNegotiation(), "application/json", [JSONRenderer, CSVRenderer], "?format=xml")
    (message,) = refused.value.detail["format"]
    assert "'xml'" in message and message.endswith("json, csv")
