"""A member's ``.keras`` file loads through a folder of its extracted parts
(``inference.member_files``): the same model, and nothing left on disk."""

import numpy as np
import pytest

from inference.member_files import load_member_file

pytestmark = pytest.mark.slow


def test_the_model_is_the_one_keras_loads_and_the_folder_is_removed(
    demo_ensemble_files, settings, tmp_path
):
    import keras

    settings.LP_MODEL_CACHE_DIR = tmp_path / "cache"
    [member] = [m for m in demo_ensemble_files if m["architecture"] == "MobileNetV2"]
    loaded = load_member_file(member["path"])
    reference = keras.saving.load_model(member["path"], compile=False)
    assert [w.shape for w in loaded.get_weights()] == [w.shape for w in reference.get_weights()]
    for ours, theirs in zip(loaded.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_file_that_is_not_an_archive_fails_and_leaves_nothing(settings, tmp_path):
    import zipfile

    settings.LP_MODEL_CACHE_DIR = tmp_path / "cache"
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(zipfile.BadZipFile):
        load_member_file(broken)
    assert list((tmp_path / "cache").iterdir()) == []


def test_inside_the_load_keras_initializers_give_zeros_and_nothing_else_changes():
    import keras

    from inference.member_files import zero_initial_values

    def dense_kernel():
        layer = keras.layers.Dense(8, kernel_initializer="glorot_uniform")
        layer.build((None, 16))
        return keras.ops.convert_to_numpy(layer.kernel)

    with zero_initial_values():
        inside = dense_kernel()
        seed_state = keras.ops.convert_to_numpy(keras.random.SeedGenerator(1234).state)
        config = keras.layers.Dense(8, kernel_initializer="he_normal").get_config()
    assert not inside.any()
    assert seed_state.any(), "a seed generator's state must keep its seed"
    assert config["kernel_initializer"]["class_name"] == "HeNormal"
    assert dense_kernel().any(), "outside the load, initializers are back"
    from keras.src.backend import Variable

    assert "_initialize_with_initializer" not in Variable.__dict__  # the inherited one, as before
    with pytest.raises(RuntimeError), zero_initial_values():
        raise RuntimeError("a load that fails")
    assert dense_kernel().any(), "a failed load puts the initializers back too"
