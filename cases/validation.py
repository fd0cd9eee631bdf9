"""Upload rules, written once for the form, the API and the admin.

Every rejection carries a message a clinician can act on. Nothing is stored here: the service
stores a file only after it passed every check.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image, UnidentifiedImageError

SUPPORTED_FORMATS = {"JPEG", "PNG", "TIFF", "BMP"}
SUPPORTED_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr"}
MIN_SIDE = 32


@dataclass(frozen=True)
class CheckedImage:
    content: bytes
    sha256: str
    width: int
    height: int
    format: str
    size_bytes: int


def check_smear_image(uploaded_file) -> CheckedImage:
    """Read and check one uploaded file; raise ``ValidationError`` with a readable message."""
    name = getattr(uploaded_file, "name", "file")
    max_bytes = settings.LP_MAX_UPLOAD_BYTES
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > max_bytes:
        raise _error(name, f"is {filesizeformat(size)}; the limit is {filesizeformat(max_bytes)}")
    uploaded_file.seek(0)
    content = uploaded_file.read(max_bytes + 1)
    if not content:
        raise _error(name, "is empty")
    if len(content) > max_bytes:
        raise _error(name, f"is larger than the limit of {filesizeformat(max_bytes)}")

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
            f"uses the unsupported pixel mode {mode!r} (e.g. 16-bit or floating point); "
            "save it as 8-bit RGB or greyscale",
        )
    if min(width, height) < MIN_SIDE:
        raise _error(name, f"is only {width}×{height} pixels; at least {MIN_SIDE} are needed")
    return CheckedImage(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        width=width,
        height=height,
        format=fmt,
        size_bytes=len(content),
    )


def _error(name: str, problem: str) -> ValidationError:
    return ValidationError(f"“{name}” {problem}.", code="invalid_image")
