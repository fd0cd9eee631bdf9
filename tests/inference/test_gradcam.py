"""Grad-CAM sanity checks that can fail (Adebayo et al., 2018, "Sanity checks for saliency maps").

A small member-shaped network (``InputScaling`` → ``backbone`` → ``avg_pool`` → ``predictions``,
as ``inference.architectures`` builds them) is trained for a few seconds to tell fields with a
violet blob from fields with a grey square at a random place. Then:

* the map's peak must fall on the blob (the discriminative evidence), not on the square;
* randomising the top layers' weights (the last convolution and the class layer) must change
  the map: Spearman rank correlation with the trained model's map below ``RANK_BOUND``. A map
  that stayed the same would show the image's edges, not what the model learned.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from inference import gradcam  # noqa: E402
from inference.layers import InputScaling  # noqa: E402

SIZE = 48
RANK_BOUND = 0.5  # mean Spearman rank correlation, trained vs randomised top layers
PEAK_TOLERANCE = 6  # pixels from the blob's centre (the feature map is 12 x 12: 4 px cells)


def _field(rng, blob: bool):
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[...] = (236, 200, 214)
    img += rng.normal(0, 6, img.shape)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    # A distractor in every field: a grey square somewhere.
    sy, sx = rng.integers(4, SIZE - 12, size=2)
    img[sy : sy + 8, sx : sx + 8] = (150, 150, 150)
    centre = None
    if blob:
        while True:
            cy, cx = rng.integers(8, SIZE - 8, size=2)
            if abs(cy - sy - 4) > 10 or abs(cx - sx - 4) > 10:
                break
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = (110, 60, 160)
        centre = (int(cy), int(cx))
    return np.clip(img, 0, 255), centre


def _member(seed: int):
    keras.utils.set_random_seed(seed)
    inner = keras.Input((SIZE, SIZE, 3))
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inner)
    y = keras.layers.MaxPooling2D(2)(y)
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(y)
    y = keras.layers.MaxPooling2D(2)(y)
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="top_conv")(y)
    backbone = keras.Model(inner, y, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = InputScaling("tf", name="input_scaling")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone(x))
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    fields = [_field(rng, blob=i % 2 == 1) for i in range(400)]
    x = np.stack([f for f, _ in fields])
    y = np.array([i % 2 for i in range(400)])
    model = _member(seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    test = [_field(np.random.default_rng(100 + i), blob=True) for i in range(12)]
    accuracy = (model.predict(np.stack([f for f, _ in test]), verbose=0).argmax(1) == 1).mean()
    assert accuracy == 1.0, "the toy model did not learn the blob: the checks would mean nothing"
    return model, test


def test_the_map_peaks_on_the_discriminative_blob(trained):
    model, test = trained
    for image, (cy, cx) in test:
        heat = gradcam.member_heatmap(model, image, class_index=1)
        full = gradcam.cv2.resize(heat, (SIZE, SIZE), interpolation=gradcam.cv2.INTER_LINEAR)
        py, px = gradcam.peak(full)
        assert np.hypot(py - cy, px - cx) <= PEAK_TOLERANCE, (py, px, cy, cx)


def test_randomising_the_top_layers_changes_the_map(trained):
    from scipy.stats import spearmanr

    model, test = trained
    randomised = keras.models.clone_model(model)
    randomised.set_weights(model.get_weights())
    rng = np.random.default_rng(5)
    for layer in (
        randomised.get_layer("predictions"),
        randomised.get_layer("backbone").get_layer("top_conv"),
    ):
        layer.set_weights(
            [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()]
        )
    correlations = []
    for image, _ in test:
        a = gradcam.member_heatmap(model, image, 1).ravel()
        b = gradcam.member_heatmap(randomised, image, 1).ravel()
        correlations.append(0.0 if b.max() == 0 else spearmanr(a, b).statistic)
    assert np.mean(correlations) < RANK_BOUND, correlations


def test_overlay_is_a_small_png_of_the_image_size(trained):
    _, test = trained
    image = test[0][0]
    png = gradcam.overlay_png(image, np.linspace(0, 1, 144).reshape(12, 12))
    assert png.startswith(b"\x89PNG") and len(png) < 20_000
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(png)).size == (SIZE, SIZE)
