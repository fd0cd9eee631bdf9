"""SHA-256 of a file, read in chunks: the one checksum of members, artifacts and runs. No Django
import, so training code can use it before settings exist."""

import hashlib
import os

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
