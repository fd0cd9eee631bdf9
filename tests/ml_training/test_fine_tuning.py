"""The keras-io fine-tuning recipe (ml_training.fine_tuning) on a real, tiny member."""

from types import SimpleNamespace

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from inference.architectures import batchnorm_layers, build_member  # noqa: E402
from ml_training import fine_tuning  # noqa: E402
from ml_training.profiles import resolve_profile  # noqa: E402


def _step(model, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 4, 8), 4)
    model.train_on_batch(x, y)


def _snapshot(layers):
    return [[np.array(w) for w in layer.get_weights()] for layer in layers]


def _changed(before, layers):
    return [
        any(
            not np.array_equal(a, np.array(b))
            for a, b in zip(old, layer.get_weights(), strict=True)
        )
        for old, layer in zip(before, layers, strict=True)
    ]


@pytest.fixture
def member():
    keras.utils.set_random_seed(0)
    model = build_member("MobileNetV2", input_size=32, num_classes=4)
    return model


def test_phase_one_trains_the_head_only(member):
    fine_tuning.freeze_backbone([member])
    member.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    backbone = member.get_layer("backbone")
    with_weights = [layer for layer in backbone.layers if layer.weights]
    before = _snapshot(with_weights)
    head_before = _snapshot([member.get_layer("predictions")])
    _step(member)
    assert not any(_changed(before, with_weights))  # BatchNorm statistics included
    assert all(_changed(head_before, [member.get_layer("predictions")]))


def test_phase_two_unfreezes_the_top_layers_and_keeps_batchnorm_in_inference_mode(member):
    backbone = member.get_layer("backbone")
    fine_tuning.unfreeze_top([member], 20)
    top, bottom = backbone.layers[-20:], backbone.layers[:-20]
    norms = batchnorm_layers(member)
    assert not any(layer.trainable for layer in norms)
    assert not any(layer.trainable for layer in bottom)
    member.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    convs = [layer for layer in top if layer.weights and not isinstance(layer, type(norms[0]))]
    bottom_weighted = [layer for layer in bottom if layer.weights]
    before_top, before_bottom, before_norms = (
        _snapshot(convs),
        _snapshot(bottom_weighted),
        _snapshot(norms),
    )
    _step(member)
    assert convs and all(_changed(before_top, convs))
    assert not any(_changed(before_bottom, bottom_weighted))
    assert not any(_changed(before_norms, norms))  # ImageNet statistics stay as they are


def test_the_recipe_applies_only_to_runs_from_imagenet_weights():
    member = {"frozen_epochs": 3}
    assert fine_tuning.frozen_epochs(SimpleNamespace(config={"weights_dir": None}), member) == 0
    assert fine_tuning.frozen_epochs(SimpleNamespace(config={"weights_dir": "/w"}), member) == 3


def test_a_profile_must_leave_epochs_to_fine_tune():
    profile = {
        "members": [{"architecture": "VGG16", "input_size": 32, "epochs": 3, "frozen_epochs": 3}]
    }
    with pytest.raises(ValueError, match="frozen_epochs 3 must be below its 3 epochs"):
        resolve_profile(profile)


def test_the_switch_recompiles_at_the_low_rate_with_its_own_schedule(member):
    from ml_training.profiles import TRAIN_DEFAULTS

    spec = {**TRAIN_DEFAULTS, "name": "m", "warmup_epochs": 0, "fine_tune_learning_rate": 1e-5}
    nets = SimpleNamespace(model=member, served=member, steps=10)
    plan = fine_tuning.start_fine_tuning(nets, spec, global_step=30, epochs_left=2)
    assert plan(30) == pytest.approx(1e-5)  # the phase starts at its own peak
    assert plan(49) < plan(30) and plan.total_steps == 50
    assert float(member.optimizer.learning_rate) == pytest.approx(1e-5)
    assert member.get_layer("backbone").layers[-1].trainable
