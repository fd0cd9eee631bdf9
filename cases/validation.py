"""Upload rules, written once for the form, the API and the admin.

Every rejection carries a message a clinician can act on. Nothing is stored here: the service
stores a file only after it passed every check.

What is stored carries nothing but pixels: the upload is decoded exactly as the model decodes it
(``inference.decoding.decode_image``: EXIF orientation applied, every mode to 8-bit RGB,
16-bit scaled to 8 bits) and those pixels are stored as a lossless PNG, so no EXIF, comment,
ICC profile or trailing byte of the upload is kept, and the model sees the same pixels from the
stored file as from the upload. A small JPEG thumbnail is made from the same pixels.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image, UnidentifiedImageError

SUPPORTED_FORMATS = {"JPEG", "PNG", "TIFF", "BMP"}
# 8-bit colour and grey, and the 16/32-bit grey modes many microscope cameras write.
SUPPORTED_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "I;16", "I;16B", "I", "F"}
MIN_SIDE = 32
STORED_FORMAT = "PNG"
THUMBNAIL_SIDE = 320


@dataclass(frozen=True)
class CheckedImage:
    content: bytes  # the pixels-only PNG that is stored
    sha256: str  # of ``content``
    width: int
    height: int
    format: str  # STORED_FORMAT
    original_format: str
    size_bytes: int
    thumbnail: bytes  # JPEG, at most THUMBNAIL_SIDE on its longer side


def check_smear_image(uploaded_file) -> CheckedImage:
    """Read and check one uploaded file; raise ``ValidationError`` with a readable message."""
    name = getattr(uploaded_file, "name", "file")
    max_bytes = settings.LP_MAX_UPLOAD_BYTES
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > max_bytes:
        raise _error(name, f"is {_size(size, max_bytes)}; the limit is {_size(max_bytes, size)}")
    uploaded_file.seek(0)
    content = uploaded_file.read(max_bytes + 1)
    if not content:
        raise _error(name, "is empty")
    if len(content) > max_bytes:
        raise _error(name, f"is larger than the limit of {_size(max_bytes, max_bytes + 1)}")

    max_pixels = settings.LP_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as probe:
                fmt, (width, height), mode = probe.format, probe.size, probe.mode
                if width * height > max_pixels:
                    raise _error(
                        name,
                        f"is {width}×{height} pixels, over the limit of {max_pixels:,} pixels "
                        "(a possible decompression bomb)",
                    )
                probe.verify()  # structure and checksums
            with Image.open(io.BytesIO(content)) as full:
                full.load()  # a truncated file fails here
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _error(
            name, "has too many pixels to open safely (a possible decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        raise _error(name, "is not an image (supported: JPEG, PNG, TIFF, BMP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _error(name, f"is damaged or truncated and cannot be read ({exc})") from exc

    if fmt not in SUPPORTED_FORMATS:
        raise _error(name, f"is a {fmt} image; supported formats are JPEG, PNG, TIFF and BMP")
    if mode not in SUPPORTED_MODES:
        raise _error(
            name,
            f"uses the unsupported pixel mode {mode!r}; save it as RGB or greyscale",
        )
    if min(width, height) < MIN_SIDE:
        raise _error(name, f"is only {width}×{height} pixels; at least {MIN_SIDE} are needed")
    from inference.exceptions import ImageDecodeError

    try:
        pixels = store_as_pixels(content, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        raise _error(name, f"cannot be read ({exc})") from exc
    return CheckedImage(
        content=pixels.content,
        sha256=pixels.sha256,
        width=pixels.width,
        height=pixels.height,
        format=STORED_FORMAT,
        original_format=fmt,
        size_bytes=len(pixels.content),
        thumbnail=pixels.thumbnail,
    )


@dataclass(frozen=True)
class StoredPixels:
    content: bytes  # lossless PNG of the decoded pixels
    sha256: str
    width: int
    height: int
    thumbnail: bytes


def store_as_pixels(content: bytes, *, max_pixels: int | None = None) -> StoredPixels:
    """The pixels the model sees (``decode_image``), as a PNG and a thumbnail, nothing else.

    Raises ``inference.exceptions.ImageDecodeError`` for a file that cannot be decoded."""
    from inference.decoding import decode_image

    rgb = decode_image(content, max_pixels=max_pixels)
    stored = _encode(Image.fromarray(rgb), STORED_FORMAT, compress_level=3)
    return StoredPixels(
        content=stored,
        sha256=hashlib.sha256(stored).hexdigest(),
        width=rgb.shape[1],
        height=rgb.shape[0],
        thumbnail=thumbnail_jpeg(rgb),
    )


def thumbnail_jpeg(rgb: np.ndarray) -> bytes:
    """A JPEG of at most ``THUMBNAIL_SIDE`` pixels on the longer side, from RGB pixels."""
    small = Image.fromarray(rgb)
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return _encode(small, "JPEG", quality=85, optimize=True)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _size(value: int, other: int) -> str:
    """``20.0 MB``, or exact bytes when the rounded figure would equal ``other``'s."""
    if filesizeformat(value) == filesizeformat(other):
        return f"{value:,} bytes"
    return filesizeformat(value)


def _error(name: str, problem: str) -> ValidationError:
    return ValidationError(f"“{name}” {problem}.", code="invalid_image")
