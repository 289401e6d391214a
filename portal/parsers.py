"""Request bodies that cannot knock the server over: read bounded, parsed into a 400 or into data that renders.

Every API view parses JSON with ``JSONParser`` (``DEFAULT_PARSER_CLASSES``): a body past the limit is a 413
while it is read, JSON nested deeper than Python can parse, invalid UTF-8, an integer past the digit limit
and a string holding half of a surrogate pair are 400s. Such a string (only a ``\\ud800``-style escape can
make one) is no text: nothing can encode it, so a response echoing it back could not be written.
"""

import json
import re

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.utils.json import strict_constant

# Bodies are bounded as ``portal.middleware`` bounds the Content-Length of every view it has no setting for.
BODY_LIMIT_SETTING = "PREDICT_MAX_UPLOAD_BYTES"
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_NAMED = 20
LONE_SURROGATE_ERROR = "holds a lone surrogate (half of a \\uD800-\\uDFFF pair), which is not text"
MAX_NAME_CHARS = 64


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


def body_read(stream, *, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it passes ``limit`` bytes: never more than that in memory."""
    if stream is None:
        return b""
    chunks, size = [], 0
    while chunk := stream.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes, the limit per request ({BODY_LIMIT_SETTING})")
        chunks.append(chunk)
    return b"".join(chunks)


def body_limit() -> int:
    return getattr(settings, BODY_LIMIT_SETTING)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, bounded, with every way a body can fail to parse answered 400 (``strict``: NaN and
    Infinity literals refused, as DRF does)."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = body_read(stream, limit=body_limit())
        try:
            text = body.decode("utf-8")
            data = json.loads(text, parse_constant=strict_constant if self.strict else None)
        except UnicodeDecodeError as error:
            raise ParseError(f"the body is not UTF-8 text (byte {error.start})") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ValueError as error:  # syntax, and integers past Python's digit limit
            raise ParseError(f"JSON parse error - {str(error)[:200]}") from None
        if SURROGATE_ESCAPE.search(text):  # a pair of escapes is one character: only the slow walk can tell
            _refuse_lone_surrogates(data)
        return data


def _refuse_lone_surrogates(data) -> None:
    """A 400 naming where (``features.city``, ``instances[3]``) the first ``MAX_NAMED`` strings holding a lone
    surrogate are, keys included."""
    named = {}
    # Walked with a list, not recursion: the body may be nested as deep as the parser allowed. A place is
    # (its parent's place, key or index), shared by its children and spelled out only when named, so a deep
    # and wide body costs no more than its size.
    pending = [(None, data)]
    while pending and len(named) < MAX_NAMED:
        place, value = pending.pop()
        if place is not None and isinstance(place[1], str) and LONE_SURROGATE.search(place[1]):
            named[_spelled(place)] = LONE_SURROGATE_ERROR
        if isinstance(value, str):
            if LONE_SURROGATE.search(value):
                named[_spelled(place)] = LONE_SURROGATE_ERROR
        elif isinstance(value, dict):
            pending.extend(((place, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend(((place, index), item) for index, item in reversed(list(enumerate(value))))
    if named:
        raise ParseError({"detail": "JSON parse error - a string is not valid Unicode", "errors": named})


def _spelled(place) -> str:
    steps = []
    while place is not None:
        place, step = place
        steps.append(step)
    spelled = ""
    for step in reversed(steps):
        spelled += f"[{step}]" if isinstance(step, int) else f".{name_shown(step)}" if spelled else name_shown(step)
    return spelled or "body"


def name_shown(name: str) -> str:
    """A name (a key of the body) as an error names it: lone surrogates written as their escapes, long names cut."""
    name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name if len(name) <= MAX_NAME_CHARS else f"{name[: MAX_NAME_CHARS - 1]}…"
