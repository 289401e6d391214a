"""Clears under load cost no request: 16 threads predict with a real model while the cache is cleared every
0.3 s; every answer is right and none fails."""

import threading
import time

import pytest
from django.db import connection

from cache_app.models import Artifact
from cache_app.services.maintenance import artifact_clear
from tests.cache_app.test_integrity import predict_house

THREADS = 16
CLEAR_EVERY_SECONDS = 0.3
RUN_SECONDS = 12.0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_clears_every_300_ms_under_16_threads_cost_no_request(house_version):
    _, expected = predict_house(house_version)
    stop = threading.Event()
    answers: list[float] = []
    errors: list[BaseException] = []
    clears = 0

    def predict_until_stopped() -> None:
        try:
            while not stop.is_set():
                answers.append(predict_house(house_version)[1])
        except BaseException as error:  # reported below, with the others
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=predict_until_stopped) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        until = time.monotonic() + RUN_SECONDS
        while time.monotonic() < until and not errors:
            time.sleep(CLEAR_EVERY_SECONDS)
            artifact_clear(artifact=Artifact.objects.get(pk=house_version.artifact.pk))
            clears += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert errors == []
    assert clears >= 10 and len(answers) > clears
    assert set(answers) == {expected}
