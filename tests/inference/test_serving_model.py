"""The serving model: members with BatchNormalization folded, fused into one registered file,
which the worker loads instead of the members and which must give the members' results."""

from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from inference import demo, registry, serving_model
from inference.engine import EnsembleEngine
from inference.exceptions import ArtifactIntegrityError
from inference.models import ModelVersion


def _random_statistics(model, seed=0):
    """Give every BatchNormalization other statistics than the identity it starts with."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.uniform(-0.5, 0.5, n))
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _bn_count(model):
    import keras

    return sum(isinstance(x, keras.layers.BatchNormalization) for x in _all_layers(model))


def test_folding_keeps_the_function_and_removes_only_the_foldable_batch_norms():
    import keras

    from inference.batchnorm_folding import fold_batch_norm

    L = keras.layers
    inner_in = keras.Input((8, 8, 6))
    inner = keras.Model(inner_in, L.BatchNormalization()(L.Conv2D(6, 1)(inner_in)), name="inner")
    x_in = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, padding="same", use_bias=False)(x_in)))
    x = L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x))
    x = L.BatchNormalization(name="kept_after_add")(L.Add()([x, x]))  # not a convolution's
    shared = L.Conv2D(6, 1, name="used_twice")(x)  # its output also feeds the Add below
    x = L.Add()([L.BatchNormalization(name="kept_after_shared")(shared), shared])
    x = L.BatchNormalization()(L.SeparableConv2D(6, 3, padding="same")(inner(x)))
    model = keras.Model(x_in, L.GlobalAveragePooling2D(name="avg_pool")(x))
    _random_statistics(model)
    images = np.random.default_rng(1).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    expected = np.asarray(model(images, training=False))

    folded, count = fold_batch_norm(model)

    assert count == 4  # Conv2D, DepthwiseConv2D, SeparableConv2D, and the nested model's Conv2D
    assert _bn_count(model) == 6 and _bn_count(folded) == 2
    names = {layer.name for layer in _all_layers(folded)}
    assert {"kept_after_add", "kept_after_shared", "used_twice", "avg_pool", "inner"} <= names
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(
        np.asarray(folded(images, training=False)), expected, rtol=1e-5, atol=1e-6 * scale
    )
    # The original is intact.
    np.testing.assert_allclose(np.asarray(model(images, training=False)), expected, atol=0)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_registered_serving_model_serves_what_the_members_serve(demo_ensemble_files, tmp_path):
    """Registered with its serving model, a version loads from that one file; it gives the
    members' probabilities, pooled features and Grad-CAM maps (members whose BatchNormalization
    statistics are not the identity an untrained member has, so that folding them matters).
    MobileNetV2 and Xception: between them every kind of convolution that folds (Conv2D,
    DepthwiseConv2D, SeparableConv2D), at a fraction of the five members' test time."""
    from inference.gradcam import GradCam
    from inference.member_files import load_member_file

    members = []
    chosen = [m for m in demo_ensemble_files if m["architecture"] in ("MobileNetV2", "Xception")]
    for i, member in enumerate(chosen):
        model = load_member_file(Path(member["path"]))
        _random_statistics(model, seed=i)
        model.save(tmp_path / f"{member['name']}.keras")
        members.append({**member, "path": str(tmp_path / f"{member['name']}.keras")})
    config = demo.demo_preprocessing()
    with serving_model.built_serving_file(members, config, demo.DEMO_CLASS_NAMES) as serving:
        version = registry.register_version(
            name="demo-ensemble",
            members=members,
            preprocessing=config,
            class_names=list(demo.DEMO_CLASS_NAMES),
            is_demo=True,
            serving=serving,
        )
    record = version.serving
    assert record["members"] == [[m["name"], m["sha256"]] for m in version.members]
    assert record["config"] == serving_model.baked_config(config)
    assert record["folded"] == 52 + 40  # every BatchNormalization of both members
    assert registry.sha256_file(default_storage.path(record["artifact"])) == record["sha256"]
    try:
        served = EnsembleEngine.from_version(version)
        version.serving = {}  # the same version, loaded the old way
        fused = EnsembleEngine.from_version(version)
        assert served.load_seconds["source"] == "serving model"
        assert fused.load_seconds["source"] == "members"
        assert served.member_names == fused.member_names
        batch = np.random.default_rng(2).uniform(0, 255, (3, 72, 72, 3)).astype(np.float32)
        probs, features = served.predict(batch)
        want_probs, want_features = fused.predict(batch)
        np.testing.assert_allclose(probs, want_probs, atol=1e-4)
        np.testing.assert_allclose(features, want_features, rtol=1e-3, atol=1e-3)
        compared = 0
        for class_name in demo.DEMO_CLASS_NAMES:  # untrained members: some maps are all zero
            maps = GradCam(served).maps(batch[0], class_name).members
            for name, heat in GradCam(fused).maps(batch[0], class_name).members.items():
                if heat.std() > 0:
                    compared += 1
                    corr = np.corrcoef(heat.ravel(), maps[name].ravel())[0, 1]
                    assert corr > 0.99, (name, class_name)
        assert compared >= 2
    finally:
        for artifact in [record["artifact"], *(m["artifact"] for m in version.members)]:
            default_storage.delete(artifact)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_serving_model_of_other_members_or_bytes_is_refused(light_version):
    baked = serving_model.baked_config(light_version.preprocessing)
    light_version.serving = {
        "artifact": "models/nowhere/serving.keras",
        "sha256": "0" * 64,
        "members": [["MobileNetV2", "f" * 64]],
        "config": baked,
    }
    with pytest.raises(ArtifactIntegrityError, match="other member files.*build_serving_model"):
        EnsembleEngine.from_version(light_version)

    name = default_storage.save("models/test/serving.keras", ContentFile(b"not a model"))
    try:
        light_version.serving.update(
            artifact=name, members=[["MobileNetV2", light_version.members[0]["sha256"]]]
        )
        with pytest.raises(ArtifactIntegrityError, match="serving model of .* corrupt"):
            EnsembleEngine.from_version(light_version)
        light_version.serving["config"] = {
            **baked,
            "tta": "none" if baked["tta"] != "none" else "flips",
        }
        with pytest.raises(ArtifactIntegrityError, match="bakes in"):
            EnsembleEngine.from_version(light_version)
    finally:
        default_storage.delete(name)


@pytest.mark.slow
@pytest.mark.django_db
def test_registration_refuses_a_serving_model_built_for_other_preprocessing(
    tmp_path, light_version
):
    path = tmp_path / "serving.keras"
    path.write_bytes(b"x")
    member = {
        **light_version.members[0],
        "path": default_storage.path(light_version.members[0]["artifact"]),
    }
    wrong = {**serving_model.baked_config(demo.demo_preprocessing()), "input_size": 96}
    files_before, rows_before = _stored_files(), ModelVersion.objects.count()
    with pytest.raises(ValueError, match="bakes in"):
        registry.register_version(
            members=[member],
            preprocessing=demo.demo_preprocessing(),
            class_names=list(demo.DEMO_CLASS_NAMES),
            serving={"path": path, "config": wrong, "folded": 0},
        )
    assert _stored_files() == files_before and ModelVersion.objects.count() == rows_before


def _stored_files():
    return sorted(str(p) for p in Path(default_storage.location).rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.django_db
def test_build_serving_model_gives_an_old_version_its_serving_model(
    light_version, capsys, django_capture_on_commit_callbacks
):
    assert light_version.serving == {}
    call_command("build_serving_model", "--version", str(light_version.version))
    light_version.refresh_from_db()
    first = light_version.serving["artifact"]
    assert light_version.serving["members"] == [["MobileNetV2", light_version.members[0]["sha256"]]]
    assert "BatchNormalization layers folded" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already has a serving model"):
        call_command("build_serving_model", "--version", str(light_version.version))

    with django_capture_on_commit_callbacks(execute=True):
        call_command("build_serving_model", "--version", str(light_version.version), "--replace")
    light_version.refresh_from_db()
    second = light_version.serving["artifact"]
    try:
        assert second != first
        assert not default_storage.exists(first)  # the replaced file is gone
        engine = EnsembleEngine.from_version(light_version)
        assert engine.load_seconds["source"] == "serving model"
        light_version.serving = {}
        member = EnsembleEngine.from_version(light_version)
        batch = np.random.default_rng(3).uniform(0, 255, (2, 72, 72, 3)).astype(np.float32)
        np.testing.assert_allclose(
            engine.predict_member_probs(batch), member.predict_member_probs(batch), atol=1e-5
        )
    finally:
        default_storage.delete(second)
