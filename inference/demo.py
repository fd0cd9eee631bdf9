"""A real but untrained five-member ensemble, for demonstrations, development and tests.

The members are the portal's five architectures with random weights (``weights=None``) at a small
input size (72 px: Xception needs at least 71). They run through exactly the code paths of a
trained ensemble, but their predictions are meaningless, and the version says so: it is
registered with ``is_demo=True`` and notes starting with "DEMO:".

Building takes about half a minute and ~600 MB on disk (NASNetLarge alone has 85 M parameters
whatever the input size), so the files are cached under ``<VAR_DIR>/demo-cache/<key>/``, the key
being the Keras version, the input size and ``DEMO_BUILD_REVISION``. Repeated calls reuse them.
Keras is imported inside the functions only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings

from inference.preprocessing import resolve_config

logger = logging.getLogger(__name__)

DEMO_ARCHITECTURES = ("ResNet50", "VGG16", "MobileNetV2", "Xception", "NASNetLarge")
DEMO_CLASS_NAMES = ["Benign", "Early", "Pre", "Pro"]
DEMO_INPUT_SIZE = 72
DEMO_SEED = 1234
# Bump when the way demo members are built changes, so that old caches are not reused.
DEMO_BUILD_REVISION = 1
DEMO_NOTES = (
    "DEMO: untrained weights, predictions are meaningless. Five real architectures (ResNet50, "
    "VGG16, MobileNetV2, Xception, NASNetLarge) with random initial weights at {size} px, built "
    "by inference.demo to exercise the serving path. Never use for any interpretation."
)
_MANIFEST = "manifest.json"


def demo_cache_key(input_size: int = DEMO_INPUT_SIZE) -> str:
    import keras

    return f"keras-{keras.__version__}-s{input_size}-r{DEMO_BUILD_REVISION}"


def demo_cache_dir(input_size: int = DEMO_INPUT_SIZE) -> Path:
    return Path(settings.VAR_DIR) / "demo-cache" / demo_cache_key(input_size)


def build_demo_members(
    out_dir: str | os.PathLike | None = None,
    *,
    input_size: int = DEMO_INPUT_SIZE,
    force: bool = False,
) -> list[dict]:
    """Build (or reuse) the five untrained members saved as ``.keras`` files.

    ``out_dir`` defaults to ``demo_cache_dir(input_size)``. A folder holding a complete build
    for the same key (``manifest.json`` plus every file) is reused unless ``force``. The build
    happens in a temporary sibling folder renamed into place at the end, so concurrent callers
    never see half-written files. Returns ``register_version``-ready member dicts:
    ``{"name", "architecture", "input_size", "path"}``.
    """
    from inference.architectures import validate_member_spec

    for arch in DEMO_ARCHITECTURES:
        validate_member_spec(arch, input_size)
    out = Path(out_dir) if out_dir is not None else demo_cache_dir(input_size)
    key = demo_cache_key(input_size)
    if not force:
        cached = _read_manifest(out, key)
        if cached is not None:
            return cached

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-build-", dir=out.parent))
    try:
        members = _build_into(tmp, input_size)
        (tmp / _MANIFEST).write_text(
            json.dumps(
                {
                    "key": key,
                    "members": [{**m, "path": Path(m["path"]).name} for m in members],
                },
                indent=2,
            )
        )
        if out.exists():
            if not force:
                cached = _read_manifest(out, key)  # built concurrently by another process
                if cached is not None:
                    return cached
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    cached = _read_manifest(out, key)
    if cached is None:  # pragma: no cover - only if the folder vanished right after the rename
        raise RuntimeError(f"demo ensemble build in {out} is incomplete")
    logger.info("built the demo ensemble in %s", out)
    return cached


def _build_into(folder: Path, input_size: int) -> list[dict]:
    import keras

    from inference.architectures import build_member

    keras.utils.set_random_seed(DEMO_SEED)
    members = []
    for arch in DEMO_ARCHITECTURES:
        model = build_member(
            arch, input_size=input_size, num_classes=len(DEMO_CLASS_NAMES), name=arch
        )
        path = folder / f"{arch}.keras"
        model.save(path)
        members.append(
            {"name": arch, "architecture": arch, "input_size": input_size, "path": str(path)}
        )
        del model
        keras.backend.clear_session(free_memory=True)
    return members


def _read_manifest(folder: Path, key: str) -> list[dict] | None:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key:
        return None
    members = []
    for m in manifest.get("members", []):
        path = folder / m["path"]
        if not path.is_file():
            return None
        members.append({**m, "path": str(path)})
    return members or None


def demo_preprocessing(input_size: int = DEMO_INPUT_SIZE) -> dict:
    return resolve_config({"input_size": input_size})


def register_demo_version(*, activate: bool = True, input_size: int = DEMO_INPUT_SIZE, user=None):
    """Register the (cached) demo ensemble as a new ``is_demo`` version, active by default."""
    from inference.registry import register_version
    from inference.serving_model import built_serving_file

    members = build_demo_members(input_size=input_size)
    config = demo_preprocessing(input_size)
    with built_serving_file(members, config, DEMO_CLASS_NAMES) as serving:
        return register_version(
            name="demo-ensemble",
            members=members,
            preprocessing=config,
            class_names=list(DEMO_CLASS_NAMES),
            metrics={},
            notes=DEMO_NOTES.format(size=input_size),
            is_demo=True,
            serving=serving,
            activate=activate,
            user=user,
        )
