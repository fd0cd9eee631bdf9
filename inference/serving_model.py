"""A version's serving model: its members, BatchNormalization folded, fused into one Keras file.

Registered beside the members (``ModelVersion.serving``, checksummed like them), so a worker
loads one file that is already fused and folded instead of five member files it fuses itself:
fewer layers to rebuild and trace, and the same fused model ``inference.fused`` builds (with the
version's input size, resizing and test-time views baked in). Measured with the released v1 on
2 cores (``manage.py bench_inference --version 1 --json``, before and after ``manage.py
build_serving_model --version 1``): a fresh worker's first result after 17.9 s instead of 25.9
s (loading 6.9 s instead of 11.2 s, the warm-up trace 4.8 s instead of 8.5 s), 4.76 instead of
4.37 images/s at batch 16, and a peak of 1,793 MB instead of 1,972 MB. 405 of the 409
BatchNormalization layers of v1's members fold away.

``ModelVersion.serving`` records what the file was built from, and a worker refuses a file
that does not match its version (``check_serving_record``)::

    {"artifact", "sha256", "bytes",
     "members": [[name, sha256 of the member file it was built from], ...],  # fused order
     "config": {"input_size", "interpolation", "tta"},  # what the fused model bakes in
     "folded": number of BatchNormalization layers folded away}

Built by ``register_version``'s callers (``ml_training.bundles``, the demo) before the version
is stored, or for a version registered without one by ``manage.py build_serving_model``.
Imports Keras: only the worker, training, that command and tests import this module.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from inference import preprocessing
from inference.exceptions import ArtifactIntegrityError

# The preprocessing keys the fused model bakes in; the others act before it (prepare_batch).
BAKED_KEYS = ("input_size", "interpolation", "tta")


def baked_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a preprocessing config that a serving model bakes in (resolved first)."""
    resolved = preprocessing.resolve_config(config)
    return {key: resolved[key] for key in BAKED_KEYS}


def build_serving_file(
    members: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    class_names: Sequence[str],
    out: Path,
) -> dict[str, Any]:
    """Write the serving model of ``members`` (dicts with ``name``, ``input_size`` and a local
    ``.keras`` ``path``) under the preprocessing ``config`` to ``out``; its record's
    ``config`` and ``folded`` (``register_version`` adds the rest)."""
    import keras

    from inference.batchnorm_folding import fold_batch_norm
    from inference.fused import build_fused_model
    from inference.member_files import check_member, load_member_file

    baked = baked_config(config)
    models, folded = [], 0
    for member in members:
        model = load_member_file(Path(member["path"]))
        check_member(model, member, list(class_names))
        model, count = fold_batch_norm(model)
        models.append(model)
        folded += count
    fused = build_fused_model(
        models,
        [m["name"] for m in members],
        baked["input_size"],
        interpolation=baked["interpolation"],
        tta=baked["tta"],
    )
    fused.save(out)
    del fused, models
    keras.backend.clear_session(free_memory=True)
    return {"config": baked, "folded": folded}


@contextmanager
def built_serving_file(
    members: Sequence[Mapping[str, Any]], config: Mapping[str, Any], class_names: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """The serving model of ``members`` built into a private scratch folder on local disk
    (under ``LP_MODEL_CACHE_DIR``, removed on exit): ``register_version``'s ``serving``."""
    scratch = Path(settings.LP_MODEL_CACHE_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="serving-", dir=scratch) as folder:
        out = Path(folder) / "serving.keras"
        yield {"path": out, **build_serving_file(members, config, class_names, out)}


def add_to_version(version, *, replace: bool = False):
    """Build the serving model of a registered ``version`` from its stored (sha256-verified)
    member files and store it with the version (``registry.attach_serving_model``)."""
    from inference.artifacts import artifact_local_path
    from inference.registry import attach_serving_model

    if version.serving and not replace:
        raise ValueError(f"{version} already has a serving model: {version.serving['artifact']}")
    members = [{**m, "path": artifact_local_path(version, m)} for m in version.members]
    with built_serving_file(members, version.preprocessing, version.class_names) as serving:
        return attach_serving_model(version, serving, replace=replace)


def check_serving_record(version) -> None:
    """``ArtifactIntegrityError`` unless ``version.serving`` was built from the version's own
    member files and baked config."""
    record = version.serving
    built_from = record.get("members")
    registered = [[m["name"], m.get("sha256")] for m in version.members]
    if built_from != registered:
        raise ArtifactIntegrityError(
            f"the serving model of {version} was built from other member files "
            f"({built_from}) than the version's ({registered}); rebuild it with "
            f"manage.py build_serving_model --version {version.version} --replace"
        )
    if record.get("config") != baked_config(version.preprocessing):
        raise ArtifactIntegrityError(
            f"the serving model of {version} bakes in {record.get('config')}, the version's "
            f"preprocessing is {baked_config(version.preprocessing)}; rebuild it with "
            f"manage.py build_serving_model --version {version.version} --replace"
        )


def load_serving_file(path: Path, names: Sequence[str]):
    """The fused model in the serving file ``path`` (checked by the caller) and, in ``names``'
    order, each member as a model of its own (sharing the fused model's layers: for
    Grad-CAM, the feature sizes and the benchmarks' per-member path)."""
    from inference.member_files import load_member_file

    fused = load_member_file(path)
    return fused, [_member(fused, name) for name in names]


def _member(fused, name: str):
    """One member inside a fused model (``inference.fused``): the member itself, or the
    two-output wrapper that also gives its pooled features, cut down to its probabilities."""
    import keras

    layers = {layer.name: layer for layer in fused.layers}
    if f"member_{name}" in layers:
        return layers[f"member_{name}"]
    wrapper = layers.get(f"{name}_f")
    if wrapper is None:
        raise ArtifactIntegrityError(f"the serving model has no member {name!r}")
    return keras.Model(wrapper.inputs, wrapper.outputs[0], name=f"member_{name}")
