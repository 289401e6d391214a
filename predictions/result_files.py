"""Where prediction inputs and results are kept: files in the ``results`` storage, never sessions or rows.

``STORAGES["results"]`` is a local folder by default and an S3 bucket or Azure container in a fleet
(``RESULTS_STORAGE_URI``), so every node and worker reads what another wrote. Names are made here, unique
per write: two attempts at one job chunk never overwrite each other, and the one that loses the race to
record its file deletes it. Files expire after ``PREDICT_RESULTS_TTL_HOURS`` (``results_clean``).
"""

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from azure.core.exceptions import AzureError
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import storages

WEB_FOLDER = "web"
JOBS_FOLDER = "jobs"
READ_CHUNK_BYTES = 256 * 1024
# What each backend raises when it cannot do its work: a local folder, S3 (unreachable, refused, missing
# bucket) or Azure. Callers see one exception instead of three SDKs' families.
STORAGE_FAULTS = (OSError, BotoCoreError, ClientError, AzureError)


class ResultStorageUnavailable(Exception):
    """The ``results`` storage failed: a fault to wait out (a 503), not one of the request."""

    code = "results_storage_unavailable"


@contextmanager
def storage_faults(doing: str):
    try:
        yield
    except STORAGE_FAULTS as error:
        raise ResultStorageUnavailable(f"the results storage failed while {doing}: {error}") from error


def results_storage():
    return storages["results"]


def result_file_save(*, folder: str, stem: str, text: str) -> str:
    """Save ``text`` as a new file; returns its name in the storage."""
    name = f"{folder}/{stem}-{uuid.uuid4().hex}.csv"
    with storage_faults(f"saving {name}"):
        return results_storage().save(name, ContentFile(text.encode("utf-8")))


def result_file_text(name: str) -> str:
    with storage_faults(f"reading {name}"), results_storage().open(name, "rb") as handle:
        return handle.read().decode("utf-8")


def result_file_exists(name: str) -> bool:
    with storage_faults(f"looking for {name}"):
        return results_storage().exists(name)


def result_file_chunks(name: str) -> Iterator[bytes]:
    """The file's bytes a piece at a time, for a streamed download.

    The file is opened by this call, not by the first ``next``: a storage that is down then fails the
    request with a 503, rather than cutting a download whose headers are already sent.
    """
    with storage_faults(f"opening {name}"):
        handle = results_storage().open(name, "rb")
    return _pieces(handle, name)


def _pieces(handle, name: str) -> Iterator[bytes]:
    with handle, storage_faults(f"reading {name}"):
        while piece := handle.read(READ_CHUNK_BYTES):
            yield piece


def result_files_delete(names: Iterable[str]) -> int:
    storage = results_storage()
    deleted = 0
    for name in names:
        with storage_faults(f"deleting {name}"):
            if name and storage.exists(name):
                storage.delete(name)
                deleted += 1
    return deleted


def job_folder(job) -> str:
    """A job's files live together; named by id and creation time, as ids repeat when a database is reset."""
    return f"{JOBS_FOLDER}/{job.pk}-{int(job.created_at.timestamp())}"


def web_results_expire(*, cutoff) -> int:
    """Delete web CSV results written before ``cutoff``; returns how many. Listing the storage, not a table:
    a result whose session is gone is found all the same."""
    storage = results_storage()
    deleted = 0
    with storage_faults(f"listing {WEB_FOLDER}"):
        try:
            users, _ = storage.listdir(WEB_FOLDER)
        except FileNotFoundError:
            return 0
        for user in users:
            _, files = storage.listdir(f"{WEB_FOLDER}/{user}")
            for file in files:
                name = f"{WEB_FOLDER}/{user}/{file}"
                if storage.get_modified_time(name) < cutoff:
                    storage.delete(name)
                    deleted += 1
    return deleted
