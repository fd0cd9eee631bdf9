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
    """Images that are not blood smears at all, as uint8 RGB: what a detector must refuse."""
    from PIL import ImageDraw

    rng = np.random.default_rng(7)
    out = {
        "blank white field": np.full((size, size, 3), 250, np.uint8),
        "blank dark field": np.full((size, size, 3), 12, np.uint8),
    }
    doc = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(doc)
    for y in range(8, size - 8, 12):
        draw.text((6, y), "Patient report page 1 lorem ipsum", fill=(20, 20, 20))
    out["document"] = np.asarray(doc)
    shot = Image.new("RGB", (size, size), (240, 240, 240))
    draw = ImageDraw.Draw(shot)
    draw.rectangle((0, 0, size, 18), fill=(30, 90, 200))
    draw.rectangle((8, 30, size - 8, 90), fill=(255, 255, 255), outline=(180, 180, 180))
    draw.rectangle((8, 100, 70, 120), fill=(0, 120, 215))
    draw.text((12, 4), "Settings", fill=(255, 255, 255))
    draw.text((14, 40), "OK   Cancel   Apply", fill=(0, 0, 0))
    out["screenshot"] = np.asarray(shot)
    yy = np.linspace(0, 1, size)[:, None]
    photo = np.empty((size, size, 3), np.float64)
    photo[...] = np.where(
        yy[..., None] < 0.55,
        np.array([90, 150, 235]) * (1 - 0.3 * yy[..., None]),  # sky
        np.array([60, 130, 45]),  # grass
    )
    photo += rng.normal(0, 12, photo.shape)
    out["photo"] = np.clip(photo, 0, 255).astype(np.uint8)
    return out


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
