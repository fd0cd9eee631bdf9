"""Registering, activating and retiring versions; artifact storage and integrity (no Keras).

Members here are small stand-in files: the registry copies and hashes files, it never loads them.
"""

import hashlib

import pytest
from django.core.files.storage import default_storage

from inference import artifacts, registry, signals
from inference.exceptions import ArtifactIntegrityError
from inference.models import ModelVersion

CLASSES = ["Benign", "Early", "Pre", "Pro"]

pytestmark = pytest.mark.usefixtures("isolated_media")


@pytest.fixture
def member_files(tmp_path):
    members = []
    for i, (name, arch) in enumerate([("ResNet50", "ResNet50"), ("MobileNetV2", "MobileNetV2")]):
        path = tmp_path / f"{name}.keras"
        path.write_bytes(f"stand-in model {i} ".encode() * 1000)
        members.append({"name": name, "architecture": arch, "input_size": 72, "path": path})
    return members


def _register(member_files, **kwargs):
    kwargs.setdefault("preprocessing", {"input_size": 72})
    kwargs.setdefault("class_names", CLASSES)
    return registry.register_version(members=member_files, **kwargs)


def _listdir_recursive(prefix):
    dirs, files = default_storage.listdir(prefix) if default_storage.exists(prefix) else ([], [])
    out = [f"{prefix}/{f}" for f in files]
    for d in dirs:
        out += _listdir_recursive(f"{prefix}/{d}")
    return out


@pytest.mark.django_db
def test_register_stores_files_with_their_sha256(member_files, tmp_path):
    plot = tmp_path / "confusion.png"
    plot.write_bytes(b"\x89PNG fake plot")
    version = _register(
        member_files,
        metrics={"ensemble": {"macro_f1": 0.5}, "artifacts": {"confusion_matrix": "cm.png"}},
        extra_files={"cm.png": plot, "report": tmp_path / "ResNet50.keras"},
        data_fingerprint="abc123",
        notes="first",
    )
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.CANDIDATE
    assert version.member_names == ["ResNet50", "MobileNetV2"]
    assert version.preprocessing == {
        "input_size": 72,
        "interpolation": "area",
        "contrast": {"method": "none"},
        "segmentation": None,
        "tta": "none",
    }
    assert version.code_version
    for member, source in zip(version.members, member_files, strict=True):
        assert member["artifact"] == f"models/v{version.version}/{member['name']}.keras"
        assert set(member) == {"name", "architecture", "input_size", "artifact", "sha256"}
        with default_storage.open(member["artifact"], "rb") as fh:
            stored = fh.read()
        assert stored == source["path"].read_bytes()
        assert member["sha256"] == hashlib.sha256(stored).hexdigest()
        assert artifacts.artifact_local_path(version, member["name"]).read_bytes() == stored

    stored = artifacts.stored_artifacts(version)
    assert stored["cm.png"]["artifact"] == f"models/v{version.version}/cm.png"
    assert stored["cm.png"]["content_type"] == "image/png"
    # The alias is kept and resolves to the stored entry.
    assert stored["confusion_matrix"] == {**stored["cm.png"], "alias_of": "cm.png"}
    assert stored["report"]["artifact"].endswith("/report.keras")  # extension added
    assert version.metrics["ensemble"] == {"macro_f1": 0.5}


@pytest.mark.django_db
def test_version_numbers_increase(member_files):
    first = _register(member_files)
    second = _register(member_files)
    assert second.version == first.version + 1
    assert second.members[0]["artifact"] != first.members[0]["artifact"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class_names": []}, "class_names"),
        ({"class_names": ["A", "A", "B"]}, "unique"),
        ({"preprocessing": {"input_size": 2}}, "input_size"),
        ({"preprocessing": {"bogus": 1}}, "unknown preprocessing key"),
        ({"member": {"architecture": "AlexNet"}}, "unknown architecture"),
        ({"member": {"architecture": "Xception", "input_size": 64}}, "at least 71"),
        ({"member": {"name": "../evil"}}, "member name"),
        ({"member": {"path": "/nonexistent.keras"}}, "no file"),
        ({"extra_files": {"../x.png": __file__}}, "relative path"),
        ({"metrics": {"bad": object()}}, "JSON"),
        ({"review_threshold": 1.5}, "review_threshold"),
        ({"review_threshold": float("nan")}, "review_threshold"),
        ({"review_threshold": "0.9"}, "review_threshold"),
    ],
)
def test_invalid_arguments_store_nothing(member_files, change, message):
    members = [dict(m) for m in member_files]
    kwargs = {}
    for key, value in change.items():
        if key == "member":
            members[0].update(value)
        else:
            kwargs[key] = value
    before = set(_listdir_recursive("models"))
    with pytest.raises(ValueError, match=message):
        _register(members, **kwargs)
    assert not ModelVersion.objects.exists()
    assert set(_listdir_recursive("models")) == before


@pytest.mark.django_db
def test_the_review_threshold_is_stored_and_flags_less_confident_results(member_files):
    figures = {"value": 0.875, "target_accuracy": 0.99, "split": "validation"}
    version = _register(member_files, review_threshold=0.875, metrics={"review_threshold": figures})
    version.refresh_from_db()
    assert version.review_threshold == 0.875
    assert version.metrics["review_threshold"] == figures
    assert version.needs_review({"Benign": 0.87, "Early": 0.13, "Pre": 0.0, "Pro": 0.0})
    assert not version.needs_review({"Benign": 0.875, "Early": 0.125, "Pre": 0.0, "Pro": 0.0})
    older = _register(member_files)  # registered without one: nothing is flagged
    assert older.review_threshold is None
    assert not older.needs_review({"Benign": 0.3, "Early": 0.3, "Pre": 0.2, "Pro": 0.2})


@pytest.mark.django_db
def test_duplicate_member_names_are_rejected(member_files):
    with pytest.raises(ValueError, match="used twice"):
        _register([member_files[0], dict(member_files[0])])


@pytest.mark.django_db
def test_failure_midway_leaves_no_row_and_no_files(member_files, monkeypatch):
    real_store = registry._store
    stored = []

    def failing_store(storage, path, name):
        if stored:
            raise OSError("disk full")
        stored.append(real_store(storage, path, name)[0])
        return stored[-1], artifacts.sha256_file(path), path.stat().st_size

    monkeypatch.setattr(registry, "_store", failing_store)
    before = set(_listdir_recursive("models"))
    with pytest.raises(OSError, match="disk full"):
        _register(member_files)
    assert not ModelVersion.objects.exists()
    assert len(stored) == 1 and not default_storage.exists(stored[0])
    assert set(_listdir_recursive("models")) == before


@pytest.mark.django_db
def test_failed_activation_inside_register_rolls_everything_back(member_files, monkeypatch):
    def broken_activate(version, *, user=None):
        raise ArtifactIntegrityError("simulated")

    monkeypatch.setattr(registry, "activate_version", broken_activate)
    before = set(_listdir_recursive("models"))
    with pytest.raises(ArtifactIntegrityError):
        _register(member_files, activate=True)
    assert not ModelVersion.objects.exists()
    assert set(_listdir_recursive("models")) == before


@pytest.mark.django_db
def test_one_active_version_and_signal_on_commit(
    member_files, admin_user, django_capture_on_commit_callbacks
):
    received = []

    def listener(sender, version, **kwargs):
        received.append(version.pk)

    signals.version_activated.connect(listener)
    try:
        first = _register(member_files)
        second = _register(member_files)
        assert artifacts.get_active_version() is None

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            first = registry.activate_version(first, user=admin_user)
        assert received == []  # not before the commit
        for callback in callbacks:
            callback()
        assert received == [first.pk]
        assert first.activated_by == admin_user and first.activated_at is not None

        with django_capture_on_commit_callbacks(execute=True):
            second = registry.activate_version(second)
        first.refresh_from_db()
        assert (first.status, second.status) == ("retired", "active")
        assert ModelVersion.objects.filter(status="active").count() == 1
        assert artifacts.get_active_version() == second
        assert received == [first.pk, second.pk]

        with django_capture_on_commit_callbacks(execute=True):
            registry.activate_version(second)  # already active: no-op, no signal
        assert received == [first.pk, second.pk]

        with django_capture_on_commit_callbacks(execute=True):
            rolled_back = registry.activate_version(first)  # re-activating a retired one
        assert rolled_back.status == "active"
        second.refresh_from_db()
        assert second.status == "retired"
    finally:
        signals.version_activated.disconnect(listener)


@pytest.mark.django_db
def test_register_with_activate(member_files, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        version = _register(member_files, activate=True)
    assert version.status == "active"
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_retire(member_files):
    version = registry.activate_version(_register(member_files))
    retired = registry.retire_version(version)
    assert retired.status == "retired"
    assert artifacts.get_active_version() is None
    assert registry.retire_version(retired).status == "retired"


@pytest.mark.django_db
def test_activation_refuses_missing_artifacts(member_files):
    version = _register(member_files)
    default_storage.delete(version.members[1]["artifact"])
    with pytest.raises(ArtifactIntegrityError, match="MobileNetV2"):
        registry.activate_version(version)
    version.refresh_from_db()
    assert version.status == "candidate"


@pytest.mark.django_db
def test_tampered_artifact_raises_integrity_error_naming_the_member(member_files):
    version = _register(member_files)
    path = default_storage.path(version.members[1]["artifact"])
    with open(path, "ab") as fh:
        fh.write(b"tampered")
    assert artifacts.artifact_local_path(version, "ResNet50")  # the intact one is fine
    with pytest.raises(ArtifactIntegrityError, match="MobileNetV2.*sha256"):
        artifacts.artifact_local_path(version, "MobileNetV2")

    from inference.engine import EnsembleEngine  # checks before loading anything

    with pytest.raises(ArtifactIntegrityError, match="MobileNetV2"):
        EnsembleEngine.from_version(version)


@pytest.mark.django_db
def test_remote_storage_downloads_to_the_cache(member_files, settings, tmp_path, monkeypatch):
    version = _register(member_files)
    settings.LP_MODEL_CACHE_DIR = tmp_path / "cache"

    class RemoteLike:
        """The default storage without ``path()``, like S3."""

        def __getattr__(self, name):
            return getattr(default_storage, name)

        def path(self, name):
            raise NotImplementedError("remote")

    monkeypatch.setattr(artifacts, "default_storage", RemoteLike())
    member = version.members[0]
    path = artifacts.artifact_local_path(version, member["name"])
    assert path == tmp_path / "cache" / f"{member['sha256']}.keras"
    assert path.read_bytes() == member_files[0]["path"].read_bytes()
    path.write_bytes(b"corrupted cache")  # a bad cached copy is fetched again
    assert (
        artifacts.sha256_file(artifacts.artifact_local_path(version, member["name"]))
        == (member["sha256"])
    )


def test_code_version_is_a_short_string():
    value = registry.code_version()
    assert isinstance(value, str) and 0 < len(value) <= 64
