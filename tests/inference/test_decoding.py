"""decode_image: every mode to RGB, EXIF orientation, and a clear error on anything else."""

import io

import numpy as np
import pytest
from PIL import Image

from inference import decoding
from inference.exceptions import ImageDecodeError
from tests.images import encode, gradient


def test_png_roundtrip_is_exact():
    arr = gradient()
    out = decoding.decode_image(encode(Image.fromarray(arr)))
    assert out.dtype == np.uint8 and out.shape == (30, 40, 3)
    np.testing.assert_array_equal(out, arr)
    assert out.flags["C_CONTIGUOUS"]


def test_jpeg_decodes_to_rgb():
    out = decoding.decode_image(encode(Image.fromarray(gradient()), "JPEG", quality=95))
    assert out.shape == (30, 40, 3)
    assert np.abs(out.astype(int) - gradient().astype(int)).mean() < 3


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:2, ..., 3] = 0  # top half fully transparent
    rgba[2:, ..., 3] = 255  # bottom half opaque
    out = decoding.decode_image(encode(Image.fromarray(rgba, "RGBA")))
    assert (out[:2] == 255).all()  # white shows through
    assert (out[2:] == (255, 0, 0)).all()


def test_palette_with_transparency_is_composited_on_white():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    img.info["transparency"] = 0
    out = decoding.decode_image(encode(img))
    assert (out == 255).all()


def test_greyscale_becomes_three_equal_channels():
    grey = gradient()[..., 0]
    out = decoding.decode_image(encode(Image.fromarray(grey, "L")))
    assert out.shape == (30, 40, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(gradient()).convert("CMYK")
    out = decoding.decode_image(encode(cmyk, "JPEG", quality=95))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - gradient().astype(int)).mean() < 8


def test_16_bit_greyscale_is_scaled_to_8_bits():
    arr16 = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr16)
    assert img.mode == "I;16"
    out = decoding.decode_image(encode(img))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])


def test_exif_orientation_is_applied():
    arr = np.zeros((10, 20, 3), dtype=np.uint8)  # landscape, left half white
    arr[:, :10] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = decoding.decode_image(encode(img, "JPEG", quality=100, exif=exif.tobytes()))
    assert out.shape == (20, 10, 3)  # now portrait
    # Rotating 90° clockwise puts the original left half at the top.
    assert out[:8].mean() > 200 and out[12:].mean() < 50


def test_paths_and_file_objects(tmp_path):
    data = encode(Image.fromarray(gradient()))
    path = tmp_path / "a.png"
    path.write_bytes(data)
    expected = decoding.decode_image(data)
    np.testing.assert_array_equal(decoding.decode_image(path), expected)
    np.testing.assert_array_equal(decoding.decode_image(str(path)), expected)
    fh = io.BytesIO(data)
    fh.read()  # a file object that was already read is rewound
    np.testing.assert_array_equal(decoding.decode_image(fh), expected)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all" * 20, b"\x89PNG\r\n\x1a\n" + b"\0" * 50],
    ids=["empty", "garbage", "png-signature-only"],
)
def test_garbage_raises_image_decode_error(data):
    with pytest.raises(ImageDecodeError) as info:
        decoding.decode_image(data)
    assert info.value.permanent
    assert str(info.value)


def test_truncated_image_raises_image_decode_error():
    data = encode(Image.fromarray(gradient(200, 200)), "JPEG")
    with pytest.raises(ImageDecodeError, match="damaged or incomplete"):
        decoding.decode_image(data[: len(data) // 2])


def test_a_truncated_image_is_refused_even_after_a_library_allowed_them(monkeypatch):
    """WeasyPrint (the case reports) sets Pillow's LOAD_TRUNCATED_IMAGES on import."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(Image.fromarray(gradient(200, 200)), "JPEG")
    with pytest.raises(ImageDecodeError, match="damaged or incomplete"):
        decoding.decode_image(data[: len(data) // 2])


def test_missing_path_raises_image_decode_error(tmp_path):
    with pytest.raises(ImageDecodeError, match="No image file"):
        decoding.decode_image(tmp_path / "nope.png")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("limit", [1000, 6000], ids=["over-twice", "between-once-and-twice"])
def test_decompression_bomb_guard_is_respected(monkeypatch, limit):
    data = encode(Image.new("RGB", (100, 100)))  # 10 000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decoding.decode_image(data)


def test_max_pixels_limit():
    data = encode(Image.new("RGB", (100, 100)))
    with pytest.raises(ImageDecodeError, match="too large"):
        decoding.decode_image(data, max_pixels=5000)
    assert decoding.decode_image(data, max_pixels=10_000).shape == (100, 100, 3)
