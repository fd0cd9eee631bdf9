"""A member's ``.keras`` file: loaded with the least memory, and the one check of a loaded member.

Keras loads a ``.keras`` archive by reading its whole weights file (``model.weights.h5``) into
memory and copying the weights from there into the model, so for a moment a member costs about
twice its size. Keras also loads the same parts from a folder (``config.json`` beside
``model.weights.h5``), where h5py reads each weight from disk. Measured on NASNetLarge (340 MB
of weights, 2 cores): loading the archive raised the resident memory by 990 MB at its peak,
loading the extracted folder by 491 MB, in the same time; this peak is the worker's largest.

Keras builds the model from its config before it reads the weights, and building draws every
variable's initial value from its initializer (random numbers, for most), all then overwritten.
The load creates them as zeros instead (``zero_initial_values``): on 2 cores the v1-sized
serving model loaded in 5.6 s instead of 7.5 s (a one-off A/B script, same file).
"""

from __future__ import annotations

import tempfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from inference.exceptions import ArtifactIntegrityError


def load_member_file(path: Path):
    """The Keras model in the ``.keras`` file ``path`` (checked by the caller), loaded from
    a private folder of its extracted parts on local disk that is removed afterwards."""
    import keras

    import inference.layers  # noqa: F401 - registers InputScaling for load_model

    # On disk, not in /tmp: a container's /tmp may be memory, which would undo the saving.
    scratch = Path(settings.LP_MODEL_CACHE_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loading-", dir=scratch) as folder:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)
        with zero_initial_values():
            return keras.saving.load_model(folder, compile=False)


_PATCH_LOCK = threading.RLock()


@contextmanager
def zero_initial_values():
    """Inside: a Keras variable created from a Keras initializer (``Initializer``: random or
    constant) starts as zeros, whatever its initializer says. Only for building a model whose
    every weight is then read from a file: Keras' loading fails when a layer's stored weights
    do not match its variables. Variables from plain callables (a seed generator's state) are
    left alone, and the initializers kept in the model's config are unchanged.

    Keras has no public switch for this; the one private method it replaces is looked up, and
    without it (another Keras) the load simply runs as before. The replacement holds for the
    whole process while it lasts: loads take turns (a lock), and nothing else may build models
    meanwhile (the worker, training and the commands build nothing while they load).
    """
    import keras
    from keras.src.backend import Variable

    with _PATCH_LOCK:
        original = getattr(Variable, "_initialize_with_initializer", None)
        if original is None:
            yield
            return
        own = "_initialize_with_initializer" in Variable.__dict__
        zeros = keras.initializers.Zeros()

        def from_zeros(variable, initializer):
            if isinstance(initializer, keras.initializers.Initializer):
                initializer = zeros
            return original(variable, initializer)

        Variable._initialize_with_initializer = from_zeros
        try:
            yield
        finally:
            if own:
                Variable._initialize_with_initializer = original
            else:  # inherited: remove ours, do not leave a copy in the subclass
                del Variable._initialize_with_initializer


def check_member(model, member: dict, class_names: list[str], owner: str = "") -> None:
    """A loaded member must take its registered (size, size, 3) input and give one output per
    class; otherwise ``ArtifactIntegrityError`` (``owner``, e.g. " of v3", names the version).
    The one check of a member, for serving, evaluation and bundle registration."""
    shape = tuple(model.input_shape)[1:]
    size = int(member["input_size"])
    if shape != (size, size, 3):
        raise ArtifactIntegrityError(
            f"member {member['name']!r}{owner} takes input {shape}, registered as "
            f"({size}, {size}, 3)"
        )
    classes = int(model.output_shape[-1])
    if classes != len(class_names):
        raise ArtifactIntegrityError(
            f"member {member['name']!r}{owner} outputs {classes} classes, the version has "
            f"{len(class_names)}: {list(class_names)}"
        )
