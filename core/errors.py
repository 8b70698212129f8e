"""One error path for every app: a base error with a message and an optional field, and the two
places that turn it into a response (the DRF exception handler for the APIs, the middleware for
the pages).

Services raise an ``AppError`` subclass whose message says what to change. Its ``status`` is
chosen by kind, never by door: ``AppError`` (a bad value: 400), ``Conflict`` (the object is in
the wrong state for this action: 409), ``NotFound`` (the thing named does not exist: 404). The
same error gives the same status through the API, the pages and the commands (which print the
message).
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme

logger = logging.getLogger(__name__)

# Largest id or integer parameter any database we run on stores (PostgreSQL bigint, SQLite).
MAX_INT64 = 2**63 - 1


class AppError(Exception):
    """A request the user can fix; the message says what to do. ``field`` names the input."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def messages_by_field(self) -> dict[str, list[str]]:
        """Field -> messages, the shape of a form's or a serializer's errors."""
        return {self.field or "detail": [self.message]}


class Conflict(AppError):
    """The action does not fit the object's current state (a done run cannot be started)."""

    status = 409


class NotFound(AppError):
    """The thing the request names does not exist (or is not the user's)."""

    status = 404


def error_body(message: str, field: str | None, errors: dict | None = None) -> dict:
    """The one JSON shape of an error: ``detail`` and ``field``, plus field -> messages."""
    body = {
        key: value if isinstance(value, list | dict) else [value]
        for key, value in (errors or {}).items()
        if key != "detail"
    }
    body.update({"detail": message, "field": field})
    return body


def int_param(value, *, field: str, low: int = 0, high: int = MAX_INT64) -> int:
    """A whole-number request parameter (an id, a count) checked against its bounds; raises
    AppError naming ``field`` for anything else (text, NUL bytes, 2**63)."""
    text = str(value).strip()
    if not text.lstrip("-").isdigit() or not text.isascii():
        raise AppError(f"{field}: give a whole number (got {text[:40]!r}).", field=field)
    number = int(text)
    if not low <= number <= high:
        raise AppError(
            f"{field}: give a number from {low} to {high} (got {text[:40]}).", field=field
        )
    return number


# --- the API door --------------------------------------------------------------------------------


def _first_field_message(errors) -> tuple[str | None, str]:
    """The first (field, message) of a DRF error detail, however nested."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            field, message = _first_field_message(value)
            if key in ("non_field_errors", "detail"):
                return field, message
            return (f"{key}.{field}" if field else key), message
        return None, ""
    if isinstance(errors, list):
        for value in errors:
            field, message = _first_field_message(value)
            if message:
                return field, message
        return None, ""
    return None, str(errors)


def api_exception_handler(exc, context):
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every error as ``{"detail", "field"}`` (plus the
    field -> messages of a validation error), with the status of its kind."""
    from rest_framework import exceptions
    from rest_framework.views import exception_handler

    if isinstance(exc, AppError):
        response = _json(error_body(exc.message, exc.field, exc.messages_by_field()), exc.status)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(int(exc.retry_after))
        return response
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(errors)
    elif isinstance(exc, ValueError | OverflowError) and not isinstance(
        exc, exceptions.APIException
    ):
        # A value the database cannot hold (a text id, 2**63, a NUL byte) slipped past a check:
        # the client gets a 400; the log keeps the traceback, so the missing check gets found.
        logger.warning("unchecked bad value in %s", context.get("view"), exc_info=exc)
        message = (
            "a value of this request cannot be used (text where a number belongs, a number "
            "too large, a NUL byte); check the ids and numbers you sent."
        )
        return _json(error_body(message, None), 400)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_message(response.data)
        errors = response.data if isinstance(response.data, dict) else {"detail": response.data}
        if field and not message.startswith(f"{field.split('.')[-1]}:"):
            message = f"{field}: {message}"  # every detail names its field first
        response.data = error_body(message, field, errors)
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {**response.data, "field": None}
    return response


def _json(body: dict, status: int):
    from rest_framework.response import Response

    return Response(body, status=status)


# --- the page door ---------------------------------------------------------------------------


NUL = "\x00"


def _error_page(request, exception: AppError) -> HttpResponse:
    """A NotFound as the site's 404 page (like Http404); any other AppError as its message in
    text, with its status."""
    from django.http import Http404
    from django.views import defaults

    if exception.status == 404:
        return defaults.page_not_found(request, Http404(exception.message))
    return HttpResponse(
        exception.message, status=exception.status, content_type="text/plain; charset=utf-8"
    )


class AppErrorMiddleware:
    """Pages: an AppError that a view let through becomes a message on the page it came from
    (POST) or an error page with its status (GET); a NUL byte in a query parameter is refused
    with 400 before any view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Query parameters only: reading a POST body here would parse uploads before the view.
        for name, values in request.GET.lists():
            if NUL in name or any(NUL in value for value in values):
                return self._refuse(request, name.replace(NUL, ""))
        return self.get_response(request)

    def _refuse(self, request, name: str) -> HttpResponse:
        message = f"{name}: remove the NUL byte (\\x00) from this parameter."
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(message, name), status=400)
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")

    def process_exception(self, request, exception):
        if not isinstance(exception, AppError) or request.path.startswith("/api/"):
            return None
        back = request.META.get("HTTP_REFERER", "")
        if request.method == "POST" and url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            messages.error(request, exception.message)
            return HttpResponseRedirect(back)
        return _error_page(request, exception)
