"""A failure is shared: callers waiting on one key get the leader's error instead of each running the whole
retry chain against a failing store (real moto server behind a fault proxy)."""

import pytest

from cache_app.services.errors import ArtifactUnavailable
from cache_app.services.fetch import FetchFailed, artifact_fetch
from cache_app.services.locks import SharedFailure
from tests.cache_app.test_faults import proxied_s3  # noqa: F401 - the fixture
from tests.processes import in_threads

CALLERS = 8


def failed_once(make_artifact, bucket, proxy):
    """An artifact on an S3 origin that now fails every request, after one caller's full retry cycle;
    returns it and how many requests that cycle made."""
    artifact = make_artifact(origin=f"s3://{bucket}/origin")
    proxy.reset()
    proxy.always_fail(500)
    with pytest.raises(FetchFailed):
        artifact_fetch(artifact=artifact)
    return artifact, proxy.count(path_contains=artifact.sha256)


@pytest.mark.django_db(transaction=True)
def test_eight_callers_against_a_failing_store_make_one_retry_cycle(make_artifact, proxied_s3, settings):  # noqa: F811
    bucket, proxy = proxied_s3
    settings.MODEL_FETCH_DEADLINE_SECONDS = 10.0
    together = make_artifact(origin=f"s3://{bucket}/origin")
    _, one_cycle = failed_once(make_artifact, bucket, proxy)
    assert one_cycle > 1  # the tier retried: there is a cycle to share

    def fetch() -> ArtifactUnavailable:
        with pytest.raises(ArtifactUnavailable) as raised:
            artifact_fetch(artifact=together)
        return raised.value

    errors = in_threads(CALLERS, fetch)
    assert proxy.count(path_contains=together.sha256) == one_cycle
    assert {error.code for error in errors} == {"model_fetch_failed"}
    assert len({str(error) for error in errors}) == 1  # everyone was told the leader's reason


def test_a_new_caller_within_the_window_gets_the_error_and_later_ones_retry(make_artifact, proxied_s3, settings):  # noqa: F811
    bucket, proxy = proxied_s3
    artifact, attempts = failed_once(make_artifact, bucket, proxy)
    with pytest.raises(FetchFailed):
        artifact_fetch(artifact=artifact)
    assert proxy.count(path_contains=artifact.sha256) == attempts  # remembered: no new request

    settings.MODEL_FETCH_FAILURE_MEMORY_SECONDS = 0.0  # the window has passed
    proxy.reset()
    assert artifact_fetch(artifact=artifact).tier == "origin"


def test_another_process_sees_the_failure_through_the_cache_folder(make_artifact, proxied_s3, settings):  # noqa: F811
    """Worker processes of one node share the failure through a file beside the key's lock."""
    from cache_app.services import locks

    bucket, proxy = proxied_s3
    artifact, _ = failed_once(make_artifact, bucket, proxy)
    locks.locks_reset()  # this process forgets: only the file remains, as for another process
    with pytest.raises(SharedFailure) as raised:
        artifact_fetch(artifact=artifact)
    assert raised.value.code == "model_fetch_failed" and "origin" in str(raised.value)
