"""Request bodies are bounded before a byte of them is read.

A body announced larger than its view accepts is answered 413 at once: JSON on the API, a short page
elsewhere. Views that take bigger bodies (batch job uploads) name the setting that bounds them in
``max_body_setting``; every other view takes ``PREDICT_MAX_UPLOAD_BYTES`` plus room for a multipart
envelope. This runs before the CSRF check, which would otherwise parse a whole multipart body to find
its token. What is read stays bounded too: JSON and CSV bodies are read against the same limit
(``portal.parsers``), and files past ``FILE_UPLOAD_MAX_MEMORY_SIZE`` go to a temporary file as they
arrive.
"""

from django.conf import settings
from django.http import HttpResponse, JsonResponse

MULTIPART_ROOM = 64 * 1024
DEFAULT_SETTING = "PREDICT_MAX_UPLOAD_BYTES"


def body_limit(view_func) -> int:
    """The largest body ``view_func`` accepts, in bytes."""
    name = getattr(view_func, "max_body_setting", None) or getattr(getattr(view_func, "cls", None), "max_body_setting", None)
    return int(getattr(settings, name or DEFAULT_SETTING)) + MULTIPART_ROOM


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._refuse(request, 400, "Content-Length is not a number", "bad_content_length")
        limit = body_limit(view_func)
        if length <= limit:
            return None
        return self._refuse(
            request, 413, f"the body is {length} bytes; the limit here is {limit} bytes", "body_too_large"
        )

    @staticmethod
    def _refuse(request, status: int, detail: str, code: str):
        # The unread body is left on the connection: close it rather than let the server read it.
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": detail, "code": code}, status=status)
        else:
            response = HttpResponse(f"<h1>Request refused</h1><p>{detail}.</p>", status=status)
        response["Connection"] = "close"
        return response


class NotFoundMiddleware:
    """A registry lookup that finds nothing (``predictions.selectors.NotFound``) is a 404 page, as Django's own
    ``Http404`` would be: selectors stay free of HTTP, and views need not translate."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.http import Http404
        from django.views.defaults import page_not_found

        from predictions.selectors import NotFound

        if isinstance(exception, NotFound):
            return page_not_found(request, Http404(str(exception)))
        return None
