"""Member builders: validation (no Keras needed), layers, BatchNorm momentum, local weights."""

import numpy as np
import pytest

from inference.architectures import (
    ARCHITECTURES,
    build_member,
    imagenet_weights_candidates,
    imagenet_weights_path,
    validate_member_spec,
)


def test_validation_names_the_minimum_input_size():
    with pytest.raises(ValueError, match=r"Xception needs an input of at least 71×71 px, got 64"):
        validate_member_spec("Xception", 64)
    with pytest.raises(ValueError, match=r"NASNetLarge needs an input of at least 32"):
        validate_member_spec("NASNetLarge", 31)
    with pytest.raises(ValueError, match="unknown architecture"):
        validate_member_spec("AlexNet", 224)
    assert validate_member_spec("Xception", 71).scaling == "tf"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"bn_momentum": 1.0}, "bn_momentum"),
    ],
)
def test_build_member_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_member("VGG16", input_size=32, **kwargs)


def test_expected_weight_file_names():
    assert imagenet_weights_candidates("ResNet50", 128) == [
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ]
    assert imagenet_weights_candidates("MobileNetV2", 128) == [
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5"
    ]
    assert imagenet_weights_candidates("MobileNetV2", 100) == [
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    ]
    assert "nasnet_large_no_top.h5" in imagenet_weights_candidates("NASNetLarge", 128)
    assert set(ARCHITECTURES) == {"ResNet50", "VGG16", "MobileNetV2", "Xception", "NASNetLarge"}


def test_missing_weights_name_the_expected_file(tmp_path):
    expected = tmp_path / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(FileNotFoundError, match=str(expected)):
        imagenet_weights_path("Xception", 128, tmp_path)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_member("Xception", input_size=128, weights_dir=tmp_path)


@pytest.mark.slow
def test_member_layers_and_bn_momentum():
    import keras

    model = build_member("MobileNetV2", input_size=32, num_classes=4, name="m1")
    assert model.name == "m1"
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 4)
    assert [layer.name for layer in model.layers] == [
        "image",
        "input_scaling",
        "backbone",
        "avg_pool",
        "head_dropout",
        "predictions",
    ]
    assert model.get_layer("input_scaling").mode == "tf"
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    bns = [
        layer
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert bns and {bn.momentum for bn in bns} == {0.9}
    probs = model.predict(np.full((2, 32, 32, 3), 128.0, np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_imagenet_weights_are_loaded_from_a_local_file(tmp_path):
    """A Keras-style no-top .h5 in weights_dir ends up in the member's backbone."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(7)
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)

    model = build_member("VGG16", input_size=32, weights_dir=tmp_path)
    for got, want in zip(
        model.get_layer("backbone").get_weights(), reference.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, want)
