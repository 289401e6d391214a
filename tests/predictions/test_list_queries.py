"""List pages read where every model is cached in one query, however many models there are."""

import pytest
from django.urls import reverse

from predictions.selectors import NotFound, model_get
from predictions.services import model_publish, predictor_serve


def _queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # the session or token is looked up once, then kept in process
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("page", ["catalog", "api"])
def test_a_list_page_costs_the_same_queries_for_one_model_or_four(
    page, signed_in, api, house_predictor_dir
):
    client, url = (signed_in, reverse("web:catalog")) if page == "catalog" else (api, "/api/models/")
    first = model_publish(predictor_dir=house_predictor_dir, name="model-0")
    predictor_serve(version=first)  # cached in memory and on disk: every tier is looked at
    one = _queries(client, url)
    for i in range(1, 4):
        model_publish(predictor_dir=house_predictor_dir, name=f"model-{i}")
    assert _queries(client, url) == one
    body = client.get(url)
    if page == "api":
        assert [m["cached_in"] for m in body.json()] == [["memory", "disk"], [], [], []]


def test_selectors_say_not_found_and_pages_answer_404(signed_in, api, db):
    with pytest.raises(NotFound, match="no model 'nope'"):
        model_get(model_ref="nope")
    assert signed_in.get(reverse("web:model-detail", kwargs={"name": "nope"})).status_code == 404
    response = api.get("/api/models/nope")
    assert response.status_code == 404 and response.json()["detail"] == "no model 'nope'"
