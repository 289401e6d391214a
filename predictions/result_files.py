"""Where prediction inputs and results are kept: files in the ``results`` storage, never sessions or rows.

``STORAGES["results"]`` is a local folder by default and an S3 bucket or Azure container in a fleet
(``RESULTS_STORAGE_URI``), so every node and worker reads what another wrote. Names are made here, unique
per write: two attempts at one job chunk never overwrite each other, and the one that loses the race to
record its file deletes it. Files expire after ``PREDICT_RESULTS_TTL_HOURS`` (``results_clean``).
"""

import uuid
from collections.abc import Iterable, Iterator

from django.core.files.base import ContentFile
from django.core.files.storage import storages

WEB_FOLDER = "web"
JOBS_FOLDER = "jobs"
READ_CHUNK_BYTES = 256 * 1024


def results_storage():
    return storages["results"]


def result_file_save(*, folder: str, stem: str, text: str) -> str:
    """Save ``text`` as a new file; returns its name in the storage."""
    name = f"{folder}/{stem}-{uuid.uuid4().hex}.csv"
    return results_storage().save(name, ContentFile(text.encode("utf-8")))


def result_file_text(name: str) -> str:
    with results_storage().open(name, "rb") as handle:
        return handle.read().decode("utf-8")


def result_file_chunks(name: str) -> Iterator[bytes]:
    """The file's bytes a piece at a time, for a streamed download."""
    with results_storage().open(name, "rb") as handle:
        while piece := handle.read(READ_CHUNK_BYTES):
            yield piece


def result_files_delete(names: Iterable[str]) -> int:
    storage = results_storage()
    deleted = 0
    for name in names:
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
