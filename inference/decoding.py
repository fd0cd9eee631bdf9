"""Image bytes, a path or a file → uint8 RGB pixels: the one decoder of uploads, training data
and serving (``decode_image``). No TensorFlow; the web process uses it to validate uploads.
Everything after decoding (resizing, contrast, segmentation) is ``inference.preprocessing``."""

from __future__ import annotations

import contextlib
import io
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from inference.exceptions import ImageDecodeError

# bytes, bytearray, memoryview, str or os.PathLike (a path), or a binary file-like object.
ImageSource = Any


def decode_image(data: ImageSource, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image to a C-contiguous uint8 RGB array of shape (H, W, 3).

    ``data`` is bytes, a path (``str``/``Path``) or a binary file-like object. The EXIF
    orientation is applied; every mode becomes RGB: grey and palette images are expanded,
    transparency (RGBA, LA, palette with transparency) is composited on white, CMYK and YCbCr
    are converted, 16-bit and 32-bit greyscale are scaled to 8 bits (``I;16`` by /257, ``F`` in
    [0, 1] by x255, otherwise clipped). Multi-frame files give their first frame.

    Pillow's decompression-bomb guard stays on: more than ``Image.MAX_IMAGE_PIXELS`` pixels is
    refused (Pillow itself refuses over twice that and only warns in between) and reported as
    ``ImageDecodeError``. ``max_pixels``
    adds a stricter limit, e.g. ``settings.LP_MAX_IMAGE_PIXELS``.

    Raises ``inference.exceptions.ImageDecodeError`` with a human-readable message on anything
    that is not a complete, readable image.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise ImageDecodeError("The file is empty.")
        source: Any = io.BytesIO(bytes(data))
    elif isinstance(data, (str, os.PathLike)):
        source = Path(data)
        if not source.is_file():
            raise ImageDecodeError(f"No image file at {source}.")
    elif hasattr(data, "read"):
        source = data
        if hasattr(data, "seek"):
            with contextlib.suppress(OSError, ValueError):
                data.seek(0)
    else:
        raise TypeError(
            f"decode_image expects bytes, a path or a binary file object, got {type(data).__name__}"
        )

    # "Complete" relies on a process-wide Pillow switch that other libraries turn on when they
    # are imported (WeasyPrint does, for the case reports): set it back here, where it counts.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(source) as img:
            pixels = img.width * img.height
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse there too.
            # (Checked here rather than by turning the warning into an error, which would
            # change the process-wide warning filters and is not thread-safe.)
            bomb_limit = Image.MAX_IMAGE_PIXELS
            if bomb_limit is not None and pixels > bomb_limit:
                raise Image.DecompressionBombError(
                    f"{pixels} pixels exceeds the limit of {bomb_limit} pixels"
                )
            if max_pixels is not None and pixels > max_pixels:
                raise ImageDecodeError(
                    f"The image is too large ({img.width}×{img.height} pixels; the limit is "
                    f"{max_pixels:,} pixels)."
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb_array(img)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(
            f"The image has too many pixels to be decoded safely ({exc})."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            "The file is not an image in a format the portal can read (PNG, JPEG, TIFF, BMP...)."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated"),
        # SyntaxError (some plugins), ValueError or EOFError.
        raise ImageDecodeError(f"The image file is damaged or incomplete ({exc}).") from exc


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        out = np.asarray(img, dtype=np.uint8)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    elif mode.startswith("I;16") or mode in ("I", "F"):
        out = _high_depth_to_rgb(np.asarray(img), mode)
    else:
        # L, 1, P, CMYK, YCbCr, LAB, HSV: Pillow's own conversions.
        out = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if out.ndim != 3 or out.shape[2] != 3 or out.shape[0] == 0 or out.shape[1] == 0:
        raise ImageDecodeError(f"The image could not be converted to RGB (mode {mode}).")
    return np.ascontiguousarray(out)


def _high_depth_to_rgb(arr: np.ndarray, mode: str) -> np.ndarray:
    arr = arr.astype(np.float64)
    if mode.startswith("I;16"):
        arr = arr / 257.0
    elif mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
        arr = arr * 255.0
    elif mode == "I" and arr.size and arr.max() > 255:
        arr = arr / 257.0
    grey = np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)
