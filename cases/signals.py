"""Listens to the model registry and to Django's sign-in signals.

When a model version is activated, images waiting for one are sent. Sign-ins, failed sign-ins and
sign-outs, through any door (pages, admin, API token exchange), are audited.
"""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from inference.signals import version_activated

from . import selectors, services


@receiver(version_activated, dispatch_uid="cases.queue_waiting_images_on_activation")
def queue_waiting_images(sender, version=None, **kwargs):
    for image_id in selectors.queued_image_ids():
        services.image_enqueue(image_id)


@receiver(user_logged_in, dispatch_uid="cases.audit_login")
def audit_login(sender, request=None, user=None, **kwargs):
    services.sign_in_recorded(user=user, address=_address(request))


@receiver(user_login_failed, dispatch_uid="cases.audit_login_failed")
def audit_login_failed(sender, credentials=None, request=None, **kwargs):
    services.sign_in_failed_recorded(
        username=(credentials or {}).get("username", ""), address=_address(request)
    )


@receiver(user_logged_out, dispatch_uid="cases.audit_logout")
def audit_logout(sender, request=None, user=None, **kwargs):
    if user is not None:
        services.sign_out_recorded(user=user, address=_address(request))


def _address(request):
    return services.request_address(request) if request is not None else None
