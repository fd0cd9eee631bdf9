"""Small image files made on the fly for tests (no data set is shipped or downloaded)."""

import io

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image


def smear_like_array(seed: int = 0, size: int = 96) -> np.ndarray:
    """A pink field with a few purple blobs: enough structure for the engine to chew on."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[...] = (236, 200, 214)
    yy, xx = np.mgrid[:size, :size]
    margin = max(size // 8, 1)
    for _ in range(3):
        cy, cx = rng.integers(margin, size - margin, size=2)
        r = rng.integers(max(size // 16, 1), max(size // 6, 2))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = (110, 60, 160)
    noise = rng.integers(-8, 9, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def image_bytes(fmt: str = "PNG", *, seed: int = 0, size: int = 96, mode: str = "RGB") -> bytes:
    img = Image.fromarray(smear_like_array(seed, size))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def upload(name: str = "smear.png", content: bytes | None = None, **kwargs) -> SimpleUploadedFile:
    content = image_bytes(**kwargs) if content is None else content
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def non_smear_arrays(size: int = 160) -> dict[str, np.ndarray]:
    """One image of every kind ``ml_training.non_smears`` makes, ``size`` px square."""
    from ml_training.non_smears import KINDS, non_smear

    return {kind: non_smear(kind, seed=7, size=(size, size)) for kind in KINDS}


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    """``img`` saved in ``fmt`` (Pillow's save options as keywords)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(width=40, height=30) -> np.ndarray:
    """A smooth RGB ramp (red across, green down): resizing and contrast change it visibly."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    r = np.broadcast_to(x[None, :], (height, width))
    g = np.broadcast_to(y[:, None], (height, width))
    b = np.full((height, width), 90.0, dtype=np.float32)
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)
