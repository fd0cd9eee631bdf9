"""Project-wide response and request hygiene."""

from django.conf import settings
from django.utils.cache import add_never_cache_headers, patch_cache_control


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every response but static files.

    Pages, API answers, smear images and thumbnails all carry patient data: no browser cache,
    no proxy, no back-button copy may keep them. Static assets (served by whitenoise before this
    middleware runs) are the only responses that are cached.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(self.static_prefix):
            add_never_cache_headers(response)  # max-age=0, no-cache, no-store, must-revalidate
            patch_cache_control(response, private=True)
        return response


class SessionActivityMiddleware:
    """Every request a person makes extends their session (``SESSION_COOKIE_AGE`` counts idle
    time), but a *passive* view's does not: a page's own status poll (a view class with
    ``passive = True``) kept an unattended workstation signed in for as long as an image waited.
    Stands in for ``SESSION_SAVE_EVERY_REQUEST``, which cannot tell the two apart; listed after
    ``SessionMiddleware``, which then saves what this marks."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.lp_passive = False
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and not request.lp_passive:
            session.modified = True  # saved (its expiry moved on) unless it is empty
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        view = getattr(view_func, "view_class", view_func)
        request.lp_passive = bool(getattr(view, "passive", False))


def client_address(request) -> str | None:
    """The client's address, as the audit log records it and django-axes counts failed sign-ins
    against (``AXES_CLIENT_IP_CALLABLE``): ``REMOTE_ADDR``, or behind ``LP_TRUSTED_PROXY_COUNT``
    reverse proxies the address the outermost of them saw (``X-Forwarded-For``, counted from the
    right, so a client cannot spoof it by sending the header itself)."""
    request = getattr(request, "_request", request)  # DRF's wrapper
    proxies = settings.LP_TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None
