"""Loading a member's verified ``.keras`` file with the least memory.

Keras loads a ``.keras`` archive by reading its whole weights file (``model.weights.h5``) into
memory and copying the weights from there into the model, so for a moment a member costs about
twice its size. Keras also loads the same parts from a folder (``config.json`` beside
``model.weights.h5``), where h5py reads each weight from disk. Measured on NASNetLarge (340 MB
of weights, 2 cores): loading the archive raised the resident memory by 990 MB at its peak,
loading the extracted folder by 491 MB, in the same time; this peak is the worker's largest.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from django.conf import settings


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
        return keras.saving.load_model(folder, compile=False)
