"""Signals sent by the registry. ``inference`` knows no patients: other apps listen here."""

from django.dispatch import Signal

# Sent after the transaction that activated a version commits; kwargs: ``version``.
version_activated = Signal()
