import cv2
import numpy as np
import pytest

from inference import preprocessing, segmentation


def _synthetic_field(seed=0):
    """Light background, pale red-cell rings, two dark purple cells; returns (rgb, true mask)."""
    rng = np.random.default_rng(seed)
    img = np.full((224, 224, 3), (235, 230, 240), np.uint8)
    for _ in range(30):
        c = tuple(int(v) for v in rng.integers(0, 224, 2))
        cv2.circle(img, c, 11, (210, 190, 205), -1)
        cv2.circle(img, c, 8, (228, 215, 225), -1)
    truth = np.zeros((224, 224), np.uint8)
    for c, r in (((70, 80), 22), ((160, 150), 18)):
        cv2.circle(img, c, r, (90, 50, 150), -1)
        cv2.circle(truth, c, r, 1, -1)
    noisy = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    return noisy, truth.astype(bool)


def test_mask_finds_the_stained_cells():
    rgb, truth = _synthetic_field()
    m = segmentation.mask(rgb, {"method": "hsv_otsu"})
    assert m.dtype == bool and m.shape == truth.shape
    assert segmentation.mask_iou(m, truth) > 0.85


def test_segment_blacks_out_the_background():
    rgb, truth = _synthetic_field(1)
    out = segmentation.segment(rgb, {"method": "hsv_otsu"})
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert out[~segmentation.mask(rgb, None)].max() == 0
    ref = segmentation.mask_from_segmented(out)
    assert segmentation.mask_iou(ref, truth) > 0.85


def test_iou_function():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert segmentation.mask_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert segmentation.mask_iou(a, b) == pytest.approx(4 / 12)
    with pytest.raises(ValueError):
        segmentation.mask_iou(a, np.zeros((3, 3), bool))


def test_flat_image_gives_empty_mask_and_bad_config_is_rejected():
    flat = np.full((32, 32, 3), 200, np.uint8)
    assert not segmentation.mask(flat, None).any()
    with pytest.raises(ValueError, match="unknown segmentation"):
        segmentation.mask(flat, {"method": "watershed"})
    with pytest.raises(ValueError, match="unknown segmentation key"):
        segmentation.resolve({"colour": 1})


def test_preprocessing_runs_segmentation_from_the_config():
    rgb, _ = _synthetic_field(2)
    cfg = {"input_size": 112, "segmentation": {"method": "hsv_otsu", "working_size": 224}}
    out = preprocessing.prepare(rgb, cfg)
    assert out.shape == (112, 112, 3)
    assert (out.max(axis=2) == 0).mean() > 0.7  # most of the field is blacked out
