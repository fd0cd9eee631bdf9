"""The serving engine: a registered ensemble fused into one Keras model, plus the process cache.

Imports TensorFlow/Keras: only the Celery worker, training and evaluation import this module
(the web process never does; ``tests/inference/test_no_tensorflow.py`` checks it).

The engine runs the version's members as one fused model (``inference.fused``): one batched
call yields every member's probabilities and pooled features; ``inference.voting`` turns them
into the vote and ``inference.ood`` into the out-of-domain score.

The process cache (``get_engine``) checks the active version's id with one small query per call
and loads the new version when it changed, so workers follow activations without a restart.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from django.conf import settings

import inference.layers  # noqa: F401 - registers InputScaling for load_model
from inference import loading, preprocessing, serving_model, voting
from inference.decoding import decode_image
from inference.exceptions import ArtifactIntegrityError
from inference.fused import build_fused_model, serving_function
from inference.models import ModelVersion
from inference.ood import OODDetector, image_statistics, split_features

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16


@dataclass(eq=False)
class EnsembleEngine:
    """A loaded version: its fused model, member models and the metadata to run and vote.

    ``version`` is the ``ModelVersion`` row it was loaded from. Build with ``from_version``.
    """

    version: ModelVersion
    fused_model: keras.Model
    member_models: list[keras.Model]
    member_names: list[str]
    class_names: list[str]
    preprocessing: dict[str, Any]
    batch_size: int = DEFAULT_BATCH_SIZE
    fingerprint: tuple = field(default=())
    ood: OODDetector | None = None
    temperature: float = 1.0  # the version's calibration of the displayed probabilities
    # The fused model as one traced function (``fused.serving_function``); shared by the
    # copies ``dataclasses.replace`` makes, so a version switch that reuses the models
    # does not trace again.
    serve: Any = field(default=None, repr=False)
    # Where ``from_version``'s time went (checksums, each member's load, fusing, their total):
    # logged, and reported by ``bench_inference``'s cold start.
    load_seconds: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_version(
        cls,
        version: ModelVersion,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tta: str | None = None,
    ) -> EnsembleEngine:
        """Load the version's serving model (one file, already fused: ``inference.serving_model``)
        or, for a version without one, every member artifact and fuse them; sha256-verified.

        ``tta`` overrides the version's test-time views, for evaluation only ("what would this
        version score with them"); serving always runs the version's own config.
        Raises ``ArtifactIntegrityError`` naming the file that is missing, corrupt, unloadable
        or does not fit the version (input size, number of classes, members, baked config).
        """
        cfg = preprocessing.resolve_config({"tta": tta}, version.preprocessing)
        if not version.members:
            raise ArtifactIntegrityError(f"{version} has no members")
        t0 = time.perf_counter()
        own = serving_model.baked_config(cfg) == serving_model.baked_config(version.preprocessing)
        if version.serving and own:
            fused, models, seconds = loading.load_serving_model(version)
            t1 = time.perf_counter()
            engine = cls.from_fused(
                version, fused, models, cfg, batch_size=batch_size, ood=loading.load_ood(version)
            )
            seconds["build_s"] = time.perf_counter() - t1  # the detector and the engine
        else:
            models, seconds = loading.load_members(version)
            t1 = time.perf_counter()
            engine = cls.from_models(
                version,
                models,
                version.member_names,
                cfg,
                batch_size=batch_size,
                ood=loading.load_ood(version),
            )
            seconds["fuse_s"] = time.perf_counter() - t1
        seconds["total_s"] = time.perf_counter() - t0
        engine.load_seconds = loading.rounded(seconds)
        logger.info(
            "loaded %s from %s: members %s, input %s px, test-time views %s, out-of-domain "
            "detector %s; in %.1f s (%s)",
            version,
            seconds["source"],
            version.member_names,
            cfg["input_size"],
            cfg["tta"],
            "yes" if engine.ood else "none",
            seconds["total_s"],
            ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items() if isinstance(v, float)),
        )
        return engine

    @classmethod
    def from_models(
        cls,
        version: ModelVersion,
        models: Sequence[keras.Model],
        names: Sequence[str],
        config: dict[str, Any],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        ood: OODDetector | None = None,
    ) -> EnsembleEngine:
        """Fuse loaded member models under ``version`` (saved or not) with a resolved config;
        ``ood``: its out-of-domain detector, whose members must be these members. The
        calibration temperature is the version's."""
        fused = build_fused_model(
            models,
            names,
            config["input_size"],
            interpolation=config["interpolation"],
            tta=config["tta"],
        )
        return cls.from_fused(
            version, fused, models, config, names=names, batch_size=batch_size, ood=ood
        )

    @classmethod
    def from_fused(
        cls,
        version: ModelVersion,
        fused: keras.Model,
        models: Sequence[keras.Model],
        config: dict[str, Any],
        *,
        names: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        ood: OODDetector | None = None,
    ) -> EnsembleEngine:
        """An engine around a fused model of ``models`` (sharing its layers; ``names``, by
        default the version's member names, in the same order), built with ``config``."""
        return cls(
            version=version,
            fused_model=fused,
            member_models=list(models),
            member_names=list(names if names is not None else version.member_names),
            class_names=list(version.class_names),
            preprocessing=config,
            batch_size=batch_size,
            fingerprint=version_fingerprint(version, config),
            temperature=version.temperature,
            serve=serving_function(fused, config["input_size"]),
        ).with_ood(ood)

    def with_ood(self, ood: OODDetector | None) -> EnsembleEngine:
        """This engine with ``ood`` as its detector (checked against the fused features)."""
        if ood is not None:
            if not self.feature_dims:
                raise ArtifactIntegrityError(
                    f"{self.version}: the members expose no pooled features for the "
                    "out-of-domain detector"
                )
            if ood.member_names != self.member_names or ood.feature_dims != self.feature_dims:
                raise ArtifactIntegrityError(
                    f"the out-of-domain detector of {self.version} was fitted on members "
                    f"{ood.member_names} {ood.feature_dims}, the version has "
                    f"{self.member_names} {self.feature_dims}"
                )
        return dataclasses.replace(self, ood=ood)

    @functools.cached_property
    def feature_dims(self) -> list[int]:
        """Each member's pooled-feature size, or [] when the fused model outputs none (read
        once per engine: ``predict`` needs it on every call)."""
        if len(self.fused_model.outputs) < 2:
            return []
        return [int(m.get_layer("avg_pool").output.shape[-1]) for m in self.member_models]

    @property
    def input_size(self) -> int:
        return self.preprocessing["input_size"]

    def warm_up(self) -> None:
        """Run one dummy batch so that graph tracing happens before the first real image."""
        dummy = np.zeros((1, self.input_size, self.input_size, 3), dtype=np.float32)
        self.predict_member_probs(dummy)

    def predict_member_probs(self, batch: np.ndarray) -> np.ndarray:
        """Every member's probabilities for a prepared batch: (N, members, classes) float32."""
        return self.predict(batch)[0]

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, members, classes) and the members' concatenated pooled features
        (N, sum of ``feature_dims``; None when the fused model has none), both float32.

        ``batch`` is (N, S, S, 3) RGB in [0, 255] as ``preprocessing.prepare_batch`` makes it.
        Large batches are cut into ``batch_size`` chunks, one fused call each.
        """
        batch = np.asarray(batch, dtype=np.float32)
        s = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (s, s, 3):
            raise ValueError(f"expected a batch of shape (N, {s}, {s}, 3), got {batch.shape}")
        n, dims = len(batch), self.feature_dims
        probs = np.empty((n, len(self.member_names), len(self.class_names)), np.float32)
        features = np.empty((n, sum(dims)), np.float32) if dims else None
        for start in range(0, n, self.batch_size):
            chunk = batch[start : start + self.batch_size]
            out = self.serve(chunk)
            if features is None:
                probs[start : start + len(chunk)] = keras.ops.convert_to_numpy(out)
            else:
                probs[start : start + len(chunk)] = keras.ops.convert_to_numpy(out[0])
                features[start : start + len(chunk)] = keras.ops.convert_to_numpy(out[1])
        return probs, features

    def classify(self, images: Sequence[Any]) -> list[voting.EnsembleResult]:
        """Classify images (encoded bytes, paths, file objects or uint8 RGB arrays).

        Each chunk of ``batch_size`` images is decoded and prepared with the version's own
        preprocessing config, run through the fused model in one call, scored by the
        out-of-domain detector when the version has one, and voted; ``inference_ms`` of each
        image is its chunk's wall time (preparation and model) divided by the chunk's size.
        Raises ``ImageDecodeError`` (permanent) for an unreadable image.
        """
        images = list(images)
        results: list[voting.EnsembleResult] = []
        max_pixels = getattr(settings, "LP_MAX_IMAGE_PIXELS", None)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            t0 = time.perf_counter()
            prepared = [
                item if isinstance(item, np.ndarray) else decode_image(item, max_pixels=max_pixels)
                for item in chunk
            ]
            batch = preprocessing.prepare_batch(prepared, self.preprocessing)
            probs, features = self.predict(batch)
            scores = self.ood_scores(batch, features)
            per_image_ms = (time.perf_counter() - t0) * 1000.0 / len(chunk)
            voted = voting.vote_batch(
                probs, self.class_names, self.member_names, per_image_ms, self.temperature
            )
            if scores is not None:
                voted = [
                    dataclasses.replace(
                        result,
                        out_of_domain=bool(scores.flagged[i]),
                        ood_score=round(float(scores.score[i]), 6),
                        ood_parts=scores.parts(i),
                    )
                    for i, result in enumerate(voted)
                ]
            results.extend(voted)
        return results

    def ood_scores(self, batch: np.ndarray, features: np.ndarray | None):
        """The detector's scores for a prepared batch and its fused features; None without
        a detector."""
        if self.ood is None or features is None:
            return None
        return self.ood.score(split_features(features, self.feature_dims), image_statistics(batch))

    def with_version(self, version: ModelVersion) -> EnsembleEngine:
        """The same loaded models under another version row with identical content."""
        return dataclasses.replace(self, version=version)


def version_fingerprint(version: ModelVersion, config: dict[str, Any] | None = None) -> tuple:
    """What determines a version's predictions: members' artifacts, classes and preprocessing
    (``config`` when the engine runs another config than the version's own)."""
    members = tuple(
        (m["name"], m["architecture"], int(m["input_size"]), m.get("sha256"))
        for m in version.members
    )
    cfg = preprocessing.resolve_config(config if config is not None else version.preprocessing)
    # Last: what a version may change without other members (reused by ``get_engine``).
    extras = ((version.ood or {}).get("sha256"), version.temperature)
    return (members, tuple(version.class_names), repr(sorted(cfg.items())), extras)


# --- Process-level cache --------------------------------------------------------------------

_lock = threading.Lock()
_engine: EnsembleEngine | None = None


# Called (no arguments) when the loaded engine is dropped, before its models are freed: whoever
# keeps objects built on those models (the worker's Grad-CAM cache, ``cases.services.saliency``)
# lets go of them here, so that a version switch holds one ensemble in memory, not two.
_release_hooks: list = []


def on_release(hook) -> None:
    """Call ``hook()`` whenever the loaded engine is dropped (a version switch, a reset)."""
    if hook not in _release_hooks:
        _release_hooks.append(hook)


def _release() -> None:
    for hook in list(_release_hooks):
        hook()


def get_engine(*, load: bool = True) -> EnsembleEngine | None:
    """The engine of the active version, loaded once per process; None when none is active.

    ``load=False`` never loads: the loaded engine if it is the active version's, else None (for
    work that must not stall on a version switch, or hold two ensembles while it loads).

    Each call reads the active version's id (one small query). When it changed, the new version
    is loaded (thread-safe; other threads wait for the load) unless its content (artifacts'
    sha256, classes, preprocessing) is identical to the loaded one, in which case the loaded
    models are reused under the new row. Load errors (``ArtifactIntegrityError``) propagate and
    the next call tries again.
    """
    global _engine
    active_pk = (
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
        .values_list("pk", flat=True)
        .first()
    )
    current = _engine
    if active_pk is None:
        return None
    if current is not None and current.version.pk == active_pk:
        return current
    if not load:
        return None
    with _lock:
        current = _engine
        if current is not None and current.version.pk == active_pk:
            return current
        try:
            version = ModelVersion.objects.get(pk=active_pk)
        except ModelVersion.DoesNotExist:  # deleted between the two queries
            return None
        fingerprint = version_fingerprint(version)
        if current is not None and current.fingerprint[:-1] == fingerprint[:-1]:
            # The same members and preprocessing: reuse the loaded models; only the
            # out-of-domain detector and the calibration (the fingerprint's last part) may differ.
            ood = current.ood if current.fingerprint == fingerprint else loading.load_ood(version)
            _engine = dataclasses.replace(
                current.with_version(version).with_ood(ood),
                fingerprint=fingerprint,
                temperature=version.temperature,
            )
            logger.info("active version is now %s (same models as %s)", version, current.version)
            return _engine
        if current is not None:
            # Free the old models before loading the new ones (peak memory: one ensemble).
            logger.info("active version changed from %s to %s: reloading", current.version, version)
            _engine = None
            _release()
            del current
            gc.collect()
        engine = EnsembleEngine.from_version(version)
        engine.warm_up()
        _engine = engine
        return engine


def load_active_engine() -> EnsembleEngine | None:
    """Load and warm up the active version at worker start-up (``worker_process_init``).

    Returns None, with a log line, when no version is active. Errors propagate.
    """
    engine = get_engine()
    if engine is None:
        logger.warning("no active model version: images will wait until one is activated")
    return engine


def reset_engine_cache() -> None:
    """Drop the cached engine (tests, or to free memory)."""
    global _engine
    with _lock:
        _engine = None
        _release()
    gc.collect()
