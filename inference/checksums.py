"""SHA-256 of a file, read in chunks: the one checksum of members, artifacts and runs. No Django
import, so training code can use it before settings exist.

``hash_ahead`` lets a starting worker hash its model files on its second core while the first
imports TensorFlow (``inference.startup``): the next ``sha256_file`` of the same, unchanged file
(same inode, size and modification time) then returns that digest at once, one time only, so
every later check reads the file again.
"""

import hashlib
import os
import threading

CHUNK = 1 << 20

_ahead: dict[tuple, str] = {}
_ahead_lock = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    key = _identity(path)
    with _ahead_lock:
        digest = _ahead.pop(key, None) if key is not None else None
    return digest if digest is not None else _digest(path)


def hash_ahead(path: str | os.PathLike) -> None:
    """Hash ``path`` now, for the next ``sha256_file`` of it (see the module docstring)."""
    key = _identity(path)
    digest = _digest(path)
    if key is not None and key == _identity(path):  # not changed while it was read
        with _ahead_lock:
            _ahead[key] = digest


def _digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _identity(path: str | os.PathLike) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
