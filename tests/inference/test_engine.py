"""The fused engine on the real tiny demo ensemble (built once, cached under var/demo-cache)."""

import numpy as np
import pytest

from inference import engine as engine_mod
from inference import fused, member_files, registry
from inference.exceptions import ImageDecodeError
from tests.images import image_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def engine(demo_version):
    eng = engine_mod.get_engine()
    assert eng is not None and eng.version == demo_version
    return eng


@pytest.fixture
def keep_engine_cache():
    """Restore the process cache after a test that swaps versions (saves a 25 s reload)."""
    saved = engine_mod._engine
    yield
    engine_mod._engine = saved


def test_fused_model_equals_each_member(engine):
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (3, 72, 72, 3)).astype(np.float32)
    fused = engine.predict_member_probs(batch)
    assert fused.shape == (3, 5, 4)
    for i, model in enumerate(engine.member_models):
        own = np.asarray(model(batch, training=False))
        np.testing.assert_allclose(fused[:, i], own, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fused.sum(axis=-1), 1.0, atol=1e-5)


def test_fused_model_resizes_members_of_another_size(engine):
    import keras

    small = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)],
        name="small",
    )
    model = fused.build_fused_model([small], ["small"], 72, interpolation="area")
    assert [layer.name for layer in model.layers][1] == "resize_small"
    x = np.random.default_rng(1).uniform(0, 255, (2, 72, 72, 3)).astype(np.float32)
    out = model.predict_on_batch(x)
    assert out.shape == (2, 1, 4)
    with pytest.raises(ValueError, match="unique"):
        fused.build_fused_model([small, small], ["a", "a"], 72)


def test_test_time_views_average_each_member_over_the_flips(engine):
    """Probabilities and pooled features (the out-of-domain detector's input) alike."""
    import keras

    from inference.preprocessing import tta_views

    members = engine.member_models[:2]
    names = engine.member_names[:2]
    combined = fused.build_fused_model(members, names, 72, interpolation="area", tta="flips")
    x = np.random.default_rng(2).uniform(0, 255, (3, 72, 72, 3)).astype(np.float32)
    out, features = combined.predict_on_batch(x)
    assert out.shape == (3, 2, 4)
    views = tta_views(x, "flips")
    start = 0
    for i, model in enumerate(members):
        per_view = np.stack([np.asarray(model(v, training=False)) for v in views])
        np.testing.assert_allclose(out[:, i], per_view.mean(axis=0), rtol=0, atol=1e-5)
        # the views matter: the plain prediction is not the average
        assert np.abs(per_view[0] - per_view.mean(axis=0)).max() > 1e-4
        pooled = keras.Model(model.inputs, model.get_layer("avg_pool").output)
        per_view = np.stack([np.asarray(pooled(v, training=False)) for v in views])
        width = per_view.shape[-1]
        np.testing.assert_allclose(
            features[:, start : start + width], per_view.mean(axis=0), rtol=1e-4, atol=1e-4
        )
        start += width
    assert features.shape == (3, start)


def test_classify_returns_one_result_per_image(engine, demo_version):
    images = [image_bytes(seed=i, size=96 + 16 * i) for i in range(3)]
    images.append(np.zeros((50, 60, 3), dtype=np.uint8))  # decoded arrays are accepted too
    results = engine.classify(images)
    assert len(results) == 4
    for r in results:
        assert r.label in demo_version.class_names
        assert r.member_count == 5 and 1 <= r.votes <= 5
        assert [m.name for m in r.members] == demo_version.member_names
        assert abs(sum(r.probabilities.values()) - 1) < 1e-4
        assert r.inference_ms > 0
    # Deterministic: the same image gives the same probabilities alone or in a batch.
    again = engine.classify(images[:1])[0]
    assert again.probabilities == pytest.approx(results[0].probabilities, abs=1e-5)


def test_classify_batches_larger_than_the_batch_size(engine):
    engine_copy = engine.with_version(engine.version)
    engine_copy.batch_size = 2
    results = engine_copy.classify([image_bytes(seed=i) for i in range(5)])
    assert len(results) == 5


def test_classify_raises_on_an_unreadable_image(engine):
    with pytest.raises(ImageDecodeError):
        engine.classify([image_bytes(seed=1), b"not an image"])


def test_get_engine_follows_activation(demo_version, demo_ensemble_files, keep_engine_cache):
    first = engine_mod.get_engine()
    assert first.version == demo_version
    assert engine_mod.get_engine() is first  # cached: same object

    small = registry.register_version(
        name="one-member",
        members=[m for m in demo_ensemble_files if m["name"] == "MobileNetV2"],
        preprocessing={"input_size": 72},
        class_names=demo_version.class_names,
        notes="test",
        activate=True,
    )
    # Without loading: nothing, while the loaded engine is another version's.
    assert engine_mod.get_engine(load=False) is None
    second = engine_mod.get_engine()
    assert second is not first
    assert engine_mod.get_engine(load=False) is second
    assert second.version == small and second.member_names == ["MobileNetV2"]
    assert len(second.classify([image_bytes(seed=3)])[0].members) == 1

    registry.retire_version(small)
    assert engine_mod.get_engine() is None
    assert engine_mod.load_active_engine() is None


def test_same_content_under_a_new_version_reuses_the_loaded_models(
    demo_version, _demo_stored_members
):
    from inference.models import ModelVersion

    first = engine_mod.get_engine()
    clone = ModelVersion.objects.create(
        version=demo_version.version + 1,
        name="demo-ensemble",
        is_demo=True,
        members=[dict(m) for m in _demo_stored_members],
        preprocessing=demo_version.preprocessing,
        class_names=demo_version.class_names,
    )
    registry.activate_version(clone)
    second = engine_mod.get_engine()
    assert second.version == clone
    assert second.fused_model is first.fused_model
    assert second.serve is first.serve  # traced once, not again after the switch


def test_warm_up_is_the_only_trace_whatever_the_batch_size(engine):
    """A worker warmed up on one image must not trace the ensemble again for its first batch
    of several (that second trace stalled a case by about 10 s on 2 cores)."""
    engine.warm_up()
    traced = engine.serve.experimental_get_tracing_count()
    rng = np.random.default_rng(1)
    for n in (1, 3, 8, 5):
        batch = rng.uniform(0, 255, (n, 72, 72, 3)).astype(np.float32)
        probs = engine.predict_member_probs(batch)
        assert probs.shape == (n, 5, 4)
    assert engine.serve.experimental_get_tracing_count() == traced == 1


def test_a_member_of_another_input_or_class_count_is_refused(engine):
    from inference.exceptions import ArtifactIntegrityError

    model = engine.member_models[0]
    size = int(model.input_shape[1])
    member = {"name": "M", "input_size": size}
    member_files.check_member(model, member, ["a", "b", "c", "d"])
    with pytest.raises(ArtifactIntegrityError, match=rf"'M' of v9 takes input .*\({size + 1}"):
        member_files.check_member(model, {**member, "input_size": size + 1}, list("abcd"), " of v9")
    with pytest.raises(ArtifactIntegrityError, match="outputs 4 classes, the version has 3"):
        member_files.check_member(model, member, ["a", "b", "c"])
