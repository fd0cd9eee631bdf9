"""Where the model looked: Grad-CAM for every member and their average for the ensemble.

Imports TensorFlow/Keras: only the worker (the follow-up task after a prediction is saved),
training and tests import this module.

Follows the keras-io example ``examples/vision/grad_cam.py`` (Selvaraju et al., 2017): the
gradient of the chosen class's score with respect to the last convolutional feature map,
averaged over space, weights the map's channels; the weighted sum, rectified and scaled to
[0, 1], is the heat map. As in the example, the score is the logit (the softmax is left out:
its saturation would flatten the gradient). In a member (``inference.architectures``) the last
feature map is the output of the nested ``backbone``, and the logit is the ``predictions``
layer's affine map of its global average.

Each member sees the image at its own input size, resized from the version's input exactly as
the fused serving model does (``fused.member_resizing``); its map is resized back to the
version's input size, and the ensemble's map is the mean of the members' maps.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import keras
import numpy as np
from PIL import Image

from inference.fused import member_resizing


@dataclass(frozen=True)
class SaliencyMaps:
    """Heat maps in [0, 1] at the version's input size (S, S): one per member and their mean."""

    class_name: str
    members: dict[str, np.ndarray]
    ensemble: np.ndarray


def gradcam_model(member: keras.Model):
    """``image → last feature map`` of a member: its ``input_scaling`` then its ``backbone``
    (the layers themselves, so the weights are the member's)."""
    scaling, backbone = member.get_layer("input_scaling"), member.get_layer("backbone")

    def feature_map(batch, training=False):
        return backbone(scaling(batch), training=training)

    return feature_map


def member_heatmap(member: keras.Model, image: np.ndarray, class_index: int, grad_model=None):
    """Grad-CAM of one member for one prepared image (H, W, 3) float RGB in [0, 255] at the
    member's input size: (h, w) in [0, 1] at the feature map's resolution."""
    import tensorflow as tf

    grad_model = grad_model or gradcam_model(member)
    kernel, bias = member.get_layer("predictions").get_weights()
    kernel = tf.constant(kernel[:, class_index])
    batch = tf.constant(np.asarray(image, np.float32)[None])
    with tf.GradientTape() as tape:
        feature_map = grad_model(batch, training=False)
        tape.watch(feature_map)
        # The logit of the class from the map, as the member computes it (dropout is off).
        score = tf.reduce_sum(tf.reduce_mean(feature_map, axis=(1, 2)) * kernel) + bias[class_index]
    grads = tape.gradient(score, feature_map)
    weights = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.nn.relu(tf.reduce_sum(feature_map[0] * weights, axis=-1)).numpy()
    top = float(heatmap.max())
    return heatmap / top if top > 0 else heatmap


class GradCam:
    """Grad-CAM for an ``EnsembleEngine``'s members (their gradient models built once)."""

    def __init__(self, engine):
        self.engine = engine
        self._grad_models = [gradcam_model(m) for m in engine.member_models]
        size = engine.input_size
        interpolation = engine.preprocessing["interpolation"]
        self._resize = [
            member_resizing(int(m.input_shape[1]), size, interpolation)
            if int(m.input_shape[1]) != size
            else None
            for m in engine.member_models
        ]

    def maps(
        self, image: np.ndarray, class_name: str, *, between: Callable[[], object] | None = None
    ) -> SaliencyMaps:
        """The maps for ``class_name`` of one prepared image (S, S, 3) at the version's size.

        ``between`` is called between two members' maps: a worker passes what must not wait for
        the whole map (classifying the images queued meanwhile)."""
        size = self.engine.input_size
        index = self.engine.class_names.index(class_name)
        members = {}
        for name, model, grad_model, resize in zip(
            self.engine.member_names,
            self.engine.member_models,
            self._grad_models,
            self._resize,
            strict=True,
        ):
            if between is not None and members:
                between()
            x = np.asarray(image, np.float32)
            if resize is not None:
                x = keras.ops.convert_to_numpy(resize(x[None]))[0]
            heat = member_heatmap(model, x, index, grad_model)
            members[name] = cv2.resize(heat, (size, size), interpolation=cv2.INTER_LINEAR)
        ensemble = np.mean(list(members.values()), axis=0)
        top = float(ensemble.max())
        return SaliencyMaps(class_name, members, ensemble / top if top > 0 else ensemble)


def overlay_png(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45) -> bytes:
    """The image (S, S, 3 uint8 or float 0..255) with the heat map blended over it in the
    ``jet`` colour map, as in the keras-io example; a small PNG."""
    rgb = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)
    heat = cv2.resize(np.asarray(heatmap, np.float32), (rgb.shape[1], rgb.shape[0]))
    colour = cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(rgb, 1 - alpha, cv2.cvtColor(colour, cv2.COLOR_BGR2RGB), alpha, 0)
    buf = io.BytesIO()
    Image.fromarray(blended).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    """(row, column) of the map's maximum."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(heatmap)), heatmap.shape))
