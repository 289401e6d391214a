"""Headers for file downloads, built from names that came from people (model names, uploaded file names)."""

import re

from django.utils.http import content_disposition_header

# Whatever is not plainly safe in a file name on every OS becomes "_": quotes, slashes, CR/LF (which would
# make the header invalid and the response a 500) and anything a browser might read as a path.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_LENGTH = 150


def attachment_header(filename: str) -> str:
    """A ``Content-Disposition`` value that saves the response under a safe version of ``filename``."""
    stem, dot, extension = str(filename).rpartition(".")
    if not dot:
        stem, extension = extension, ""
    stem = _UNSAFE.sub("_", stem).strip("._")[: MAX_LENGTH] or "download"
    extension = _UNSAFE.sub("", extension)[:10]
    return content_disposition_header(True, f"{stem}.{extension}" if extension else stem)
