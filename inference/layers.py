"""Custom Keras layers of the member models. Imports Keras: only the worker and training load it.

Every member model starts with ``InputScaling(mode)``, so all members of an ensemble take the same
float32 batch of RGB values in [0, 255] and each scales it the way its architecture expects. The
layer is registered as ``leukemia_portal>InputScaling``: saved ``.keras`` files reload with plain
``keras.saving.load_model`` once this module is imported (``inference.engine`` imports it).
"""

import keras
from keras import ops

from inference.preprocessing import (
    CAFFE_MEAN_BGR,
    SCALING_MODES,
    TORCH_MEAN_RGB,
    TORCH_STD_RGB,
)


@keras.saving.register_keras_serializable(package="leukemia_portal")
class InputScaling(keras.layers.Layer):
    """Scale RGB in [0, 255] like ``keras.applications.<arch>.preprocess_input`` (channels last).

    ``mode="tf"``: to [-1, 1]; ``"caffe"``: RGB→BGR then minus the ImageNet BGR means (ResNet50,
    VGG16); ``"torch"``: to [0, 1], minus the ImageNet means, divided by the stds. Same maths as
    ``inference.preprocessing.scale_numpy``.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in SCALING_MODES:
            raise ValueError(f"unknown scaling mode {mode!r}; choose one of {list(SCALING_MODES)}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(TORCH_MEAN_RGB, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(TORCH_STD_RGB, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        mean = ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        return ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
