"""Listens to the model registry: when a version is activated, waiting images are queued."""

from django.dispatch import receiver

from inference.signals import version_activated

from . import services


@receiver(version_activated, dispatch_uid="cases.queue_waiting_images_on_activation")
def queue_waiting_images(sender, version=None, **kwargs):
    services.enqueue_waiting_images()
