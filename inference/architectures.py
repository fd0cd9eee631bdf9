"""Member model builders shared by training (``ml_training``) and the demo ensemble.

Imports Keras inside functions only, so importing this module is cheap and TensorFlow-free.

Every member has the same shape::

    Input (S, S, 3) float32, RGB in [0, 255]  ("image")
      → InputScaling(mode of the architecture)          ("input_scaling")
      → keras.applications.<Arch>(include_top=False)     ("backbone", a nested model)
      → GlobalAveragePooling2D                           ("avg_pool")
      → Dropout                                          ("head_dropout", omitted when 0)
      → Dense(num_classes, softmax, float32)             ("predictions")

Training can freeze or unfreeze ``model.get_layer("backbone")``.

BatchNormalization momentum: every backbone BN layer is set to ``bn_momentum`` (0.9 by default).
Keras' defaults (0.99, MobileNetV2 0.999) make the moving statistics lag far behind the weights
when training from scratch on a small data set; MobileNetV2 then predicts a single class in
inference mode although its training accuracy looks fine. 0.9 tracks the weights closely enough.

ImageNet weights come only from files on disk (``weights_dir``), named as Keras names them in
``~/.keras/models`` (see ``imagenet_weights_candidates``); nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inference.preprocessing import ARCHITECTURE_SCALING

if TYPE_CHECKING:  # pragma: no cover
    import keras


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    min_input_size: int
    scaling: str


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    name: ArchitectureSpec(name=name, min_input_size=minimum, scaling=ARCHITECTURE_SCALING[name])
    for name, minimum in (
        ("ResNet50", 32),
        ("VGG16", 32),
        ("MobileNetV2", 32),
        ("Xception", 71),
        ("NASNetLarge", 32),
    )
}

_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


def validate_member_spec(architecture: str, input_size: int) -> ArchitectureSpec:
    """Check an architecture name and an input size; ValueError with the reason otherwise."""
    spec = ARCHITECTURES.get(architecture)
    if spec is None:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        raise ValueError(f"input_size must be an integer, got {input_size!r}")
    if input_size < spec.min_input_size:
        raise ValueError(
            f"{architecture} needs an input of at least {spec.min_input_size}×"
            f"{spec.min_input_size} px, got {input_size}"
        )
    return spec


def imagenet_weights_candidates(architecture: str, input_size: int) -> list[str]:
    """File names, in order of preference, of the no-top ImageNet weights Keras would download.

    ``keras.utils.get_file`` stores them under these names in ``~/.keras/models``; the download
    URL's own name is accepted too where it differs (NASNet).
    """
    validate_member_spec(architecture, input_size)
    if architecture == "ResNet50":
        return ["resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    if architecture == "VGG16":
        return ["vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    if architecture == "Xception":
        return ["xception_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    if architecture == "NASNetLarge":
        return ["nasnet_large_no_top.h5", "NASNet-large-no-top.h5"]
    # MobileNetV2: one file per training resolution; Keras falls back to 224 for other sizes.
    rows = input_size if input_size in _MOBILENET_V2_SIZES else 224
    return [f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"]


def imagenet_weights_path(architecture: str, input_size: int, weights_dir: str | Path) -> Path:
    """The local ImageNet weights file of a member; FileNotFoundError naming the expected file."""
    folder = Path(weights_dir)
    names = imagenet_weights_candidates(architecture, input_size)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"ImageNet weights for {architecture} not found: expected {folder / names[0]}"
        + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")
        + ". Put Keras' no-top weight file there, or build with weights_dir=None "
        "(random initialisation). Weights are never downloaded."
    )


def build_member(
    architecture: str,
    *,
    input_size: int,
    num_classes: int = 4,
    weights_dir: str | Path | None = None,
    dropout: float = 0.3,
    bn_momentum: float = 0.9,
    name: str | None = None,
) -> keras.Model:
    """Build one ensemble member (see the module docstring for its layers).

    ``weights_dir=None`` initialises the backbone randomly; otherwise the no-top ImageNet file
    must be in that folder (FileNotFoundError naming it if not). The model is not compiled.
    """
    spec = validate_member_spec(architecture, input_size)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer ≥ 2, got {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if not 0.0 < bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in (0, 1), got {bn_momentum!r}")
    weights = (
        str(imagenet_weights_path(architecture, input_size, weights_dir))
        if weights_dir is not None
        else None
    )

    import keras

    from inference.layers import InputScaling

    application = getattr(keras.applications, architecture)
    inputs = keras.Input(shape=(input_size, input_size, 3), dtype="float32", name="image")
    backbone = application(
        include_top=False,
        weights=weights,
        input_shape=(input_size, input_size, 3),
        name="backbone",
    )
    set_bn_momentum(backbone, bn_momentum)
    x = InputScaling(spec.scaling, name="input_scaling")(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name or architecture)


def set_bn_momentum(model: keras.Model, momentum: float) -> int:
    """Set the momentum of every BatchNormalization layer in ``model`` (nested too); the count."""
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def batchnorm_layers(model: keras.Model) -> list:
    """Every BatchNormalization layer in ``model``, nested models included."""
    import keras

    return [
        layer for layer in _walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _walk_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk_layers(layer)
