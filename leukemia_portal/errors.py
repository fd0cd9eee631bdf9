"""Error answers: JSON under ``/api/``, the project's own pages everywhere else.

Django refuses some requests before a view can answer (too many files, too large a body, a bad
Host header): those become a JSON error for API callers too, never an HTML or debug page, and
never echo the request's headers or cookies.
"""

import logging

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

# Refusals of the request's data, raised wherever it is first read (a view, or the CSRF check).
REQUEST_DATA_REFUSED = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


def request_refused_message(exc: Exception) -> tuple[int, str]:
    """The status and a plain sentence for a request Django refused while reading it."""
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return status.HTTP_400_BAD_REQUEST, (
            f"More than {limit} files were sent in one request; send at most {limit} at a time."
        )
    if isinstance(exc, TooManyFieldsSent):
        return status.HTTP_400_BAD_REQUEST, "The request has too many form fields."
    if isinstance(exc, RequestDataTooBig):
        return status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "The request body is too large."
    return status.HTTP_400_BAD_REQUEST, "The request was refused as malformed."


def api_exception_handler(exc, context):
    """DRF's handler, plus JSON for what DRF leaves to Django (``SuspiciousOperation``)."""
    response = exception_handler(exc, context)
    if response is None and isinstance(exc, SuspiciousOperation):
        code, message = request_refused_message(exc)
        logger.warning("API request refused: %s", exc.__class__.__name__)
        response = Response({"detail": message}, status=code)
    return response


def is_api_request(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    """400 (413 for too large a body). A request whose data Django refused to read (too many
    files or fields, too large) is refused before its view, by the CSRF check reading the form:
    the page says what to do, in the site's layout, with the way back to the form."""
    code, message = request_refused_message(exception)
    if is_api_request(request):
        return JsonResponse({"detail": message}, status=code)
    if not isinstance(exception, REQUEST_DATA_REFUSED):
        return defaults.bad_request(request, exception)  # 400.html, without the request
    back = request.path if url_has_allowed_host_and_scheme(request.path, None) else None
    context = {"message": f"Nothing was saved. {message}", "back": back}
    return render(request, "400.html", context, status=code)


def permission_denied(request, exception=None):
    """403. A role refusal (``cases.roles.RoleRequired``) carries a message worth showing."""
    message = str(exception or "") or "You do not have permission for this."
    if is_api_request(request):
        return JsonResponse({"detail": message}, status=403)
    return render(request, "403.html", {"message": message}, status=403)


def page_not_found(request, exception=None):
    if is_api_request(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_request(request):
        return JsonResponse(
            {"detail": "Internal server error. Try again; if it persists, tell an administrator."},
            status=500,
        )
    return defaults.server_error(request)
