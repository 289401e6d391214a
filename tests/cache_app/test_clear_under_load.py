"""Clears under load cost no request: 16 threads predict with a real model while the cache is cleared every
0.3 s; every answer is right and none fails."""

import threading
import time

import pytest
from django.db import connection

from cache_app.models import Artifact
from cache_app.services.maintenance import artifact_clear
from tests.cache_app.test_integrity import predict_house
from tests.processes import in_threads

THREADS = 16
CLEAR_EVERY_SECONDS = 0.3
RUN_SECONDS = 12.0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_clears_every_300_ms_under_16_threads_cost_no_request(house_version):
    _, expected = predict_house(house_version)
    stop = threading.Event()
    clears = []

    def clear_until_stopped() -> None:
        try:
            while not stop.wait(CLEAR_EVERY_SECONDS):
                clears.append(artifact_clear(artifact=Artifact.objects.get(pk=house_version.artifact.pk)))
        finally:
            connection.close()

    def predict_for_a_while() -> list[float]:
        until = time.monotonic() + RUN_SECONDS
        answers = []
        while time.monotonic() < until:
            answers.append(predict_house(house_version)[1])
        return answers

    clearer = threading.Thread(target=clear_until_stopped)
    clearer.start()
    try:
        answers = [answer for per_thread in in_threads(THREADS, predict_for_a_while) for answer in per_thread]
    finally:
        stop.set()
        clearer.join()

    # in_threads re-raised the first failure, if any request had one.
    assert len(clears) >= 10 and len(answers) > len(clears)
    assert set(answers) == {expected}
