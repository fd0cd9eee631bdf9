"""Resizing, contrast, segmentation placement and the config resolver (no TensorFlow)."""

import sys
import types

import numpy as np
import pytest
from PIL import Image

from inference import preprocessing as pp
from inference.exceptions import ImageDecodeError
from tests.images import encode, gradient

# --- resolve_config -------------------------------------------------------------------------


def test_defaults():
    assert pp.resolve_config() == {
        "input_size": 128,
        "interpolation": "area",
        "contrast": {"method": "none"},
        "segmentation": None,
        "tta": "none",
    }


def test_first_mapping_wins_then_defaults():
    explicit = {"input_size": 96, "contrast": None}
    model_cfg = {"input_size": 224, "interpolation": "cubic", "contrast": "clahe"}
    cfg = pp.resolve_config(explicit, model_cfg)
    assert cfg["input_size"] == 96  # explicit
    assert cfg["interpolation"] == "bicubic"  # model config, alias normalised
    assert cfg["contrast"] == {"method": "clahe", "clip_limit": 2.0, "tile_grid": 8}
    assert cfg["segmentation"] is None
    assert pp.resolve_config(cfg) == cfg  # idempotent


def test_segmentation_false_disables_explicitly():
    cfg = pp.resolve_config({"segmentation": False}, {"segmentation": {"method": "x"}})
    assert cfg["segmentation"] is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"size": 10}, "unknown preprocessing key"),
        ({"input_size": 4}, "between 8 and 1024"),
        ({"input_size": "big"}, "must be an integer"),
        ({"input_size": [64, 32]}, "square"),
        ({"interpolation": "fancy"}, "unknown interpolation"),
        ({"contrast": {"method": "gamma"}}, "unknown contrast method"),
        ({"contrast": {"clip_limit": 2}}, 'with a "method"'),
        ({"contrast": {"method": "clahe", "tiles": 8}}, "unknown parameter"),
        ({"contrast": {"method": "clahe", "clip_limit": -1}}, "clip_limit"),
        ({"contrast": {"method": "clahe", "tile_grid": 0}}, "tile_grid"),
        ({"contrast": {"method": "stretch", "low": 50, "high": 10}}, "below high"),
        ({"segmentation": "yes"}, "segmentation must be"),
        ({"segmentation": {"working_size": 2}}, "working_size"),
        ({"tta": "rotations"}, "unknown tta"),
    ],
)
def test_invalid_configs_raise_clear_value_errors(config, message):
    with pytest.raises(ValueError, match=message):
        pp.resolve_config(config)


def test_non_mapping_raises():
    with pytest.raises(ValueError, match="mapping"):
        pp.resolve_config(["input_size", 3])


def test_tta_views_are_the_image_and_its_flips():
    batch = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)
    assert pp.tta_views(batch, "none").shape == (1, 2, 3, 3, 3)
    views = pp.tta_views(batch, "flips")
    assert views.shape == (4, 2, 3, 3, 3)
    np.testing.assert_array_equal(views[0], batch)
    np.testing.assert_array_equal(views[1], batch[:, ::-1])  # upside down
    np.testing.assert_array_equal(views[2], batch[:, :, ::-1])  # mirrored
    np.testing.assert_array_equal(views[3], batch[:, ::-1, ::-1])
    assert pp.resolve_config({"tta": "FLIPS"})["tta"] == "flips"


# --- prepare --------------------------------------------------------------------------------


def test_prepare_resizes_to_a_square_uint8():
    out = pp.prepare(gradient(300, 200), {"input_size": 64})
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    "contrast",
    [{"method": "none"}, {"method": "clahe", "clip_limit": 3.0}, {"method": "stretch"}],
    ids=lambda c: c["method"],
)
def test_prepare_is_deterministic(contrast):
    rng = np.random.default_rng(0)
    rgb = rng.integers(60, 200, (120, 90, 3), dtype=np.uint8)
    cfg = {"input_size": 48, "contrast": contrast}
    np.testing.assert_array_equal(pp.prepare(rgb, cfg), pp.prepare(rgb.copy(), cfg))


def test_clahe_raises_local_contrast_of_a_flat_image():
    rng = np.random.default_rng(1)
    rgb = (120 + rng.integers(-5, 6, (64, 64, 3))).astype(np.uint8)
    plain = pp.prepare(rgb, {"input_size": 64})
    clahe = pp.prepare(rgb, {"input_size": 64, "contrast": {"method": "clahe", "clip_limit": 4}})
    assert clahe.std() > plain.std() * 1.5


def test_stretch_maps_percentiles_to_the_full_range():
    rgb = np.tile(np.linspace(100, 150, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    out = pp.prepare(
        rgb, {"input_size": 64, "contrast": {"method": "stretch", "low": 0, "high": 100}}
    )
    assert out.min() == 0 and out.max() == 255


def test_prepare_rejects_non_uint8_and_bad_shapes():
    with pytest.raises(ValueError, match="uint8"):
        pp.prepare(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        pp.prepare(np.zeros((8, 8, 4), dtype=np.uint8))


def test_greyscale_array_is_accepted():
    assert pp.prepare(np.zeros((20, 20), dtype=np.uint8), {"input_size": 16}).shape == (16, 16, 3)


def test_segmentation_runs_at_its_working_size(monkeypatch):
    calls = []

    def segment(rgb, config):
        calls.append((rgb.shape, dict(config)))
        out = rgb.copy()
        out[:2] = 0
        return out

    fake = types.ModuleType("inference.segmentation")
    fake.segment = segment
    monkeypatch.setitem(sys.modules, "inference.segmentation", fake)
    cfg = {"input_size": 32, "segmentation": {"method": "otsu", "working_size": 96}}
    out = pp.prepare(gradient(300, 200), cfg)
    assert out.shape == (32, 32, 3)
    assert calls == [((96, 96, 3), {"method": "otsu"})]  # working_size is not passed on

    calls.clear()
    pp.prepare(gradient(300, 200), {"input_size": 32, "segmentation": {"method": "otsu"}})
    assert calls[0][0] == (32, 32, 3)  # default: the model's input size


def test_segmentation_must_return_an_image_of_the_same_shape(monkeypatch):
    fake = types.ModuleType("inference.segmentation")
    fake.segment = lambda rgb, config: rgb[:10]
    monkeypatch.setitem(sys.modules, "inference.segmentation", fake)
    with pytest.raises(ValueError, match="must return uint8"):
        pp.prepare(gradient(), {"input_size": 16, "segmentation": {}})


def test_load_and_prepare_and_prepare_batch():
    data = encode(Image.fromarray(gradient()))
    single = pp.load_and_prepare(data, {"input_size": 24})
    batch = pp.prepare_batch([data, pp.decode_image(data)], {"input_size": 24})
    assert batch.shape == (2, 24, 24, 3) and batch.dtype == np.float32
    assert batch.min() >= 0 and batch.max() <= 255
    np.testing.assert_array_equal(batch[0], single.astype(np.float32))
    np.testing.assert_array_equal(batch[1], batch[0])


def test_prepare_batch_propagates_decode_errors():
    with pytest.raises(ImageDecodeError):
        pp.prepare_batch([b"junk"], {"input_size": 24})


# --- scale_numpy (Keras comparison in test_scaling.py) ----------------------------------------


def test_scale_numpy_known_values():
    x = np.array([[0.0, 127.5, 255.0]], dtype=np.float32)
    np.testing.assert_allclose(pp.scale_numpy(x, "tf"), [[-1.0, 0.0, 1.0]])
    caffe = pp.scale_numpy(np.array([[10.0, 20.0, 30.0]]), "caffe")
    np.testing.assert_allclose(caffe, [[30 - 103.939, 20 - 116.779, 10 - 123.68]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown scaling mode"):
        pp.scale_numpy(x, "inception")


def test_scale_numpy_does_not_modify_its_input():
    x = np.full((2, 2, 3), 100.0, dtype=np.float32)
    pp.scale_numpy(x, "caffe")
    assert (x == 100.0).all()


def test_every_architecture_has_a_scaling_mode():
    assert pp.ARCHITECTURE_SCALING == {
        "ResNet50": "caffe",
        "VGG16": "caffe",
        "MobileNetV2": "tf",
        "Xception": "tf",
        "NASNetLarge": "tf",
    }
    with pytest.raises(ValueError, match="unknown architecture"):
        pp.scaling_mode("AlexNet")
