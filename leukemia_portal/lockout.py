"""What a locked-out login attempt is answered with (django-axes' ``AXES_LOCKOUT_CALLABLE``)."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

from .errors import is_api_request

STATUS = 429


def _minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def lockout_response(request, original_response=None, credentials=None):
    minutes = _minutes()
    message = (
        f"Too many failed sign-in attempts. Sign-in is blocked for {minutes} minutes for this "
        "account and this address; try again later or ask an administrator to unlock it."
    )
    if is_api_request(request):
        response = JsonResponse({"detail": message}, status=STATUS)
    else:
        response = render(
            request, "registration/locked_out.html", {"message": message}, status=STATUS
        )
    response["Retry-After"] = str(minutes * 60)
    return response
