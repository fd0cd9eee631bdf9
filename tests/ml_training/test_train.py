"""Pieces of member training that the smoke runs cannot check closely."""

import numpy as np
import pytest

from ml_training import train

pytestmark = pytest.mark.filterwarnings("ignore")


def _bn_model(momentum):
    import keras

    inputs = keras.Input((4, 4, 3))
    x = keras.layers.BatchNormalization(momentum=momentum, name="bn")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


@pytest.mark.parametrize("compiled", [True, False])
def test_bn_refresh_averages_its_batches_and_restores_the_momentum(compiled):
    rng = np.random.default_rng(0)
    images = rng.normal(50.0, 10.0, (8, 4, 4, 3)).astype(np.float32)
    images[:4] += 100.0  # two very different halves: an exponential average would favour one
    model = _bn_model(momentum=0.9)
    train.refresh_bn_statistics(model, images, batches=2, batch_size=4, seed=3, compiled=compiled)
    bn = model.get_layer("bn")
    # two batches of four cover the eight images once: the average of the two batch means is
    # the mean over all images, whichever image fell in which batch
    np.testing.assert_allclose(np.asarray(bn.moving_mean), images.mean(axis=(0, 1, 2)), rtol=1e-5)
    # and the variance is the plain mean of the two batches' (biased) variances
    order = np.random.default_rng(3).permutation(8)  # the draw refresh_bn_statistics makes
    batch_vars = [images[order[k : k + 4]].var(axis=(0, 1, 2)) for k in (0, 4)]
    np.testing.assert_allclose(np.asarray(bn.moving_variance), np.mean(batch_vars, 0), rtol=1e-4)
    assert bn.momentum == 0.9


def test_compiled_validation_and_refresh_trace_once_and_match_eager():
    """Each epoch's validation and BatchNorm refresh reuse the graph traced at the first."""
    from ml_training.member_model import graph_function

    rng = np.random.default_rng(1)
    images = rng.normal(50.0, 10.0, (20, 4, 4, 3)).astype(np.float32)
    model = _bn_model(momentum=0.9)
    for epoch in range(3):
        train.refresh_bn_statistics(model, images, batches=3, batch_size=4, seed=epoch)
        eager = model(images, training=False).numpy()
        # 20 images in batches of 8: two batch sizes, one graph
        np.testing.assert_allclose(train.predict_probs(model, images, 8), eager, rtol=1e-5)
        np.testing.assert_allclose(
            train.predict_probs(model, images, 8, compiled=False), eager, rtol=1e-5
        )
    shape = (None, 4, 4, 3)
    assert graph_function(model, "inference", shape, None).experimental_get_tracing_count() == 1
    refresh = graph_function(model, ("batchnorm statistics", (True,)), shape, None)
    assert refresh.experimental_get_tracing_count() == 1


def test_bn_refresh_with_no_batches_changes_nothing():
    model = _bn_model(momentum=0.9)
    before = np.asarray(model.get_layer("bn").moving_mean).copy()
    train.refresh_bn_statistics(
        model, np.ones((4, 4, 4, 3), np.float32), batches=0, batch_size=2, seed=0
    )
    np.testing.assert_array_equal(np.asarray(model.get_layer("bn").moving_mean), before)


def _nested_model():
    """A backbone (a nested model, one BatchNorm frozen like a fine-tuned ImageNet layer) and a
    head with a BatchNorm of its own."""
    import keras

    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(name="frozen_bn")(x)
    x = keras.layers.BatchNormalization(name="inner_bn")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    backbone.get_layer("frozen_bn").trainable = False
    outer = keras.Input((6, 6, 3))
    y = keras.layers.BatchNormalization(name="head_bn")(backbone(outer))
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(outer, keras.layers.Dense(2, activation="softmax")(y))


def test_compiled_refresh_matches_eager_on_nested_and_frozen_layers():
    from inference.architectures import batchnorm_layers

    rng = np.random.default_rng(2)
    images = rng.normal(20.0, 5.0, (24, 6, 6, 3)).astype(np.float32)
    compiled, eager = _nested_model(), _nested_model()
    eager.set_weights(compiled.get_weights())
    frozen = np.asarray(compiled.get_layer("backbone").get_layer("frozen_bn").moving_mean).copy()
    for epoch in range(2):
        for model, graph in ((compiled, True), (eager, False)):
            train.refresh_bn_statistics(
                model, images, batches=3, batch_size=8, seed=epoch, compiled=graph
            )
    pairs = zip(batchnorm_layers(compiled), batchnorm_layers(eager), strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(np.asarray(a.moving_mean), np.asarray(b.moving_mean), rtol=1e-5)
        np.testing.assert_allclose(
            np.asarray(a.moving_variance), np.asarray(b.moving_variance), rtol=1e-4
        )
    # the frozen layer keeps its statistics; the one after it moved to the data's
    backbone = compiled.get_layer("backbone")
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("frozen_bn").moving_mean), frozen)
    assert float(np.abs(np.asarray(backbone.get_layer("inner_bn").moving_mean)).max()) > 0.1


def test_a_members_graphs_go_with_its_model():
    """The cached graphs hold their model weakly: a finished member's memory is released."""
    import gc
    import weakref

    from ml_training.member_model import _GRAPHS

    model = _bn_model(momentum=0.9)
    images = np.ones((4, 4, 4, 3), np.float32)
    train.refresh_bn_statistics(model, images, batches=1, batch_size=4, seed=0)
    train.predict_probs(model, images)
    assert len(_GRAPHS[model]) == 2
    models = len(_GRAPHS)
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None and len(_GRAPHS) < models


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ({"input_size": 224, "train_crop": 128}, 128),
        ({"input_size": 128, "train_crop": None}, None),
        ({"input_size": 128, "train_crop": 128}, None),  # the whole input: no window
    ],
)
def test_training_crop(member, expected):
    assert train.training_crop(member) == expected
