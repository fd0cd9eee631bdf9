"""Errors raised by the serving engine. ``permanent`` tells a caller whether retrying can help."""


class InferenceError(Exception):
    permanent = False


class ImageDecodeError(InferenceError):
    """The bytes are not an image the engine can read: retrying will not help."""

    permanent = True


class ArtifactIntegrityError(InferenceError):
    """A model artifact is missing or its sha256 differs from the registry's."""

    permanent = False


class NoActiveModel(InferenceError):
    """No model version is active; work waits until one is."""

    permanent = False
