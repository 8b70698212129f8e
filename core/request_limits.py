"""Requests larger than the site accepts are refused from their ``Content-Length`` header,
before a byte of the body is read (Django would otherwise stream a 300 MB multipart upload to a
temporary file before any view could refuse it).

The limit is ``settings.MAX_REQUEST_BYTES``: the largest upload (explain's 20 MB image) plus room
for the form around it. The refusal is 413 with a message saying what to send instead: JSON
``{detail, field}`` for API requests, a short page otherwise.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape


def request_limit_bytes() -> int:
    return int(getattr(settings, "MAX_REQUEST_BYTES", 21 * 1024 * 1024))


def too_large_message(length: int, limit: int) -> str:
    return (
        f"The request is {length / 1024 / 1024:.1f} MB, over the {limit / 1024 / 1024:.0f} MB "
        "this site accepts: send a smaller image (JPEG, PNG or WebP up to 20 MB)."
    )


class RequestSizeLimitMiddleware:
    """413 for a declared ``Content-Length`` over the limit (or not a number: 400)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.META.get("CONTENT_LENGTH") or ""
        if raw:
            try:
                length = int(raw)
            except ValueError:
                return self._refuse(request, "The Content-Length header is not a number.", 400)
            limit = request_limit_bytes()
            if length > limit:
                return self._refuse(request, too_large_message(length, limit), 413)
        return self.get_response(request)

    @staticmethod
    def _refuse(request, message: str, status: int):
        wants_json = "/api/" in request.path or "json" in request.META.get("HTTP_ACCEPT", "")
        if wants_json:
            response = JsonResponse({"detail": message, "field": "image"}, status=status)
        else:
            response = HttpResponse(
                f"<!doctype html><title>Too large</title><p>{escape(message)}</p>"
                '<p><a href="javascript:history.back()">Back</a></p>',
                status=status,
            )
        # The body was not read: the connection cannot carry another request.
        response["Connection"] = "close"
        return response
