"""Input scaling: NumPy twin == keras.applications preprocess_input == the InputScaling layer."""

import numpy as np
import pytest

from inference.preprocessing import ARCHITECTURE_SCALING, scale_numpy

keras = pytest.importorskip("keras")


def _preprocess_input(architecture):
    module = {
        "ResNet50": keras.applications.resnet50,
        "VGG16": keras.applications.vgg16,
        "MobileNetV2": keras.applications.mobilenet_v2,
        "Xception": keras.applications.xception,
        "NASNetLarge": keras.applications.nasnet,
    }[architecture]
    return module.preprocess_input


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(42)
    return rng.integers(0, 256, (3, 9, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURE_SCALING))
def test_numpy_and_layer_match_keras_applications(architecture, batch):
    from inference.layers import InputScaling

    mode = ARCHITECTURE_SCALING[architecture]
    expected = _preprocess_input(architecture)(batch.copy())
    np.testing.assert_allclose(scale_numpy(batch, mode), expected, rtol=0, atol=1e-5)
    layer_out = keras.ops.convert_to_numpy(InputScaling(mode)(batch))
    np.testing.assert_allclose(layer_out, expected, rtol=0, atol=1e-5)


def test_torch_mode_matches_imagenet_utils(batch):
    from inference.layers import InputScaling

    expected = keras.applications.imagenet_utils.preprocess_input(batch.copy(), mode="torch")
    np.testing.assert_allclose(scale_numpy(batch, "torch"), expected, atol=1e-5)
    out = keras.ops.convert_to_numpy(InputScaling("torch")(batch))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_layer_accepts_uint8_and_rejects_unknown_modes(batch):
    from inference.layers import InputScaling

    out = keras.ops.convert_to_numpy(InputScaling("tf")(batch.astype(np.uint8)))
    np.testing.assert_allclose(out, scale_numpy(batch, "tf"), atol=1e-6)
    with pytest.raises(ValueError, match="unknown scaling mode"):
        InputScaling("inception")


def test_layer_round_trips_through_a_saved_model(tmp_path, batch):
    from inference.layers import InputScaling

    inputs = keras.Input((9, 7, 3))
    model = keras.Model(inputs, InputScaling("caffe", name="scale")(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)  # no custom_objects needed
    assert loaded.get_layer("scale").get_config()["mode"] == "caffe"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(batch)), scale_numpy(batch, "caffe"), atol=1e-5
    )
