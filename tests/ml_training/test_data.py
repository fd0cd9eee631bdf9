import json

import numpy as np
import pytest

from ml_training import data


@pytest.mark.parametrize(
    ("folder", "label"),
    [
        ("Benign", "Benign"),
        ("Early", "Early"),
        ("Pre", "Pre"),
        ("Pro", "Pro"),
        ("[Malignant] early Pre-B", "Early"),
        ("[Malignant] Pre-B", "Pre"),
        ("[Malignant] Pro-B", "Pro"),
        ("hematogones", "Benign"),
        ("Segmented", None),
        ("notes", None),
    ],
)
def test_canonical_class(folder, label):
    assert data.canonical_class(folder) == label


def test_manifest_records_hashes_and_sizes(synthetic_dir):
    m = data.build_manifest(synthetic_dir)
    assert len(m.entries) == 40
    e = m.entries[0]
    assert len(e.sha256) == 64 and len(e.phash) == 16
    assert (e.width, e.height) == (96, 96) and e.bytes > 0
    assert {x.label for x in m.entries} == set(data.CLASS_NAMES)
    assert m.fingerprint() == data.build_manifest(synthetic_dir).fingerprint()


def test_dataset_root_with_original_tree_is_accepted(tmp_path, synthetic_dir):
    root = tmp_path / "dataset"
    root.mkdir()
    synthetic_dir.rename(root / "Original")
    assert data.resolve_data_dir(root) == root / "Original"


def test_missing_class_folders_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        data.build_manifest(tmp_path)


def test_exact_duplicates_dropped_and_near_duplicates_grouped(dup_dir):
    m = data.build_manifest(dup_dir)
    summary = m.summary()
    assert summary["exact_duplicates_dropped"] == 1
    assert summary["images"] == 33  # 32 + the re-saved JPEG
    dropped = m.dropped[0]
    assert dropped["reason"] == "exact_duplicate"
    resaved = next(e for e in m.entries if e.path.endswith("resaved.jpg"))
    twins = [e for e in m.entries if e.group == resaved.group]
    assert len(twins) == 2 and {e.label for e in twins} == {"Early"}
    assert summary["near_duplicate_groups"] >= 1


def test_conflicting_labels_drop_every_copy(tmp_path, synthetic_dir):
    src = sorted((synthetic_dir / "Pro").iterdir())[0]
    (synthetic_dir / "Pre" / "impostor.png").write_bytes(src.read_bytes())
    m = data.build_manifest(synthetic_dir)
    assert m.summary()["label_conflicts_dropped"] == 2
    assert all(e.sha256 != data._hash_file(src)[0] for e in m.entries)


def test_near_duplicate_groups_are_connected_components():
    hashes = ["0000000000000000", "0000000000000003", "000000000000000f", "ffffffffffffffff"]
    assert data.near_duplicate_groups(hashes, 2) == [[0, 1, 2], [3]]
    assert data.near_duplicate_groups(hashes, 0) == [[0], [1], [2], [3]]


def _fake_manifest(n_per_class=30, group_size=3):
    entries = []
    gid = 0
    for label in data.CLASS_NAMES:
        for i in range(n_per_class):
            if i % group_size == 0:
                gid += 1
            entries.append(
                data.ManifestEntry(
                    f"{label}/{i}.png", label, f"{label}{i}", "0" * 16, 1, 1, 1, group=gid
                )
            )
    return data.Manifest("/nowhere", entries, [], list(data.CLASS_NAMES))


def test_split_is_stratified_group_respecting_and_seeded():
    m = _fake_manifest()
    s = data.split_manifest(m, seed=7, val_fraction=0.15, test_fraction=0.15)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert sum(len(p) for p in parts) == len(m.entries)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    groups = m.groups
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(groups[list(parts[a])]) & set(groups[list(parts[b])])
    labels = m.labels
    for part in (s.val, s.test):
        counts = np.bincount(labels[part], minlength=4)
        assert counts.min() > 0 and counts.max() - counts.min() <= 3
    again = data.split_manifest(m, seed=7, val_fraction=0.15, test_fraction=0.15)
    assert (again.train, again.val, again.test) == (s.train, s.val, s.test)
    other = data.split_manifest(m, seed=8, val_fraction=0.15, test_fraction=0.15)
    assert other.test != s.test


def test_manifest_and_split_round_trip(tmp_path, dup_dir):
    m = data.build_manifest(dup_dir)
    s = data.split_manifest(m, seed=1, val_fraction=0.2, test_fraction=0.2)
    m.save(tmp_path)
    s.save(tmp_path, m)
    assert (tmp_path / "manifest.csv").read_text().startswith("path,label,sha256,phash")
    loaded = data.Manifest.load(tmp_path)
    assert loaded.fingerprint() == m.fingerprint()
    s2 = data.Split.load(tmp_path, loaded)
    assert (s2.train, s2.val, s2.test) == (s.train, s.val, s.test)
    counts = json.loads((tmp_path / "split.json").read_text())["counts"]
    assert sum(sum(c.values()) for c in counts.values()) == len(m.entries)


def test_cv_folds_test_every_development_image_once_and_never_the_internal_test_split():
    m = _fake_manifest()
    internal_test = set(data.split_manifest(m, seed=4, val_fraction=0.15).test)
    tests = []
    for fold in (1, 2, 3):
        s = data.split_manifest(m, seed=4, val_fraction=0.15, cv_folds=3, cv_fold=fold)
        parts = [set(s.train), set(s.val), set(s.test)]
        assert not set().union(*parts) & internal_test
        assert sum(len(p) for p in parts) == len(m.entries) - len(internal_test)
        for a in range(3):
            for b in range(a + 1, 3):
                assert not set(m.groups[list(parts[a])]) & set(m.groups[list(parts[b])])
        assert s.method.startswith(f"StratifiedGroupKFold, test = fold {fold} of 3")
        # validation: the share of the training pool a normal run gives it (0.15 / 0.85)
        assert abs(len(s.val) / (len(s.train) + len(s.val)) - 0.15 / 0.85) < 0.06
        tests.append(s.test)
    development = sorted(set(range(len(m.entries))) - internal_test)
    assert sorted(i for t in tests for i in t) == development


@pytest.mark.parametrize(("folds", "fold"), [(5, None), (None, 2), (2, 1), (5, 0), (5, 6)], ids=str)
def test_cv_options_are_checked(folds, fold):
    with pytest.raises(ValueError, match="fold"):
        data.split_manifest(_fake_manifest(), seed=1, cv_folds=folds, cv_fold=fold)


def test_too_few_images_to_split_is_a_clear_error(tmp_path):
    from PIL import Image

    from tests.images import smear_like_array

    for i, label in enumerate(["Benign", "Benign", "Early"]):
        (tmp_path / label).mkdir(exist_ok=True)
        Image.fromarray(smear_like_array(seed=300 + i, size=64)).save(tmp_path / label / f"{i}.png")
    manifest = data.build_manifest(tmp_path)
    with pytest.raises(
        ValueError, match=r"3 images \(Benign 2, Early 1, Pre 0, Pro 0\) are too few"
    ):
        data.split_manifest(manifest, seed=0)


def test_near_duplicates_are_found_on_the_pixels_the_model_sees(tmp_path):
    """Different 16-bit images hashed alike (clipped to white) and an EXIF-rotated re-save of a
    field hashed apart from it: groups must follow ``decode_image``'s pixels."""
    import io

    from PIL import Image

    from tests.images import smear_like_array

    def grey16(seed):  # two different fields as 16-bit greys (above 255: white when clipped)
        grey = smear_like_array(seed=seed, size=96).mean(axis=2)
        return Image.fromarray((grey * 257).astype(np.uint16))

    field = Image.fromarray(smear_like_array(seed=5, size=96))
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[274] = 6  # shown rotated 90 degrees clockwise
    field.rotate(90, expand=True).save(rotated, "JPEG", quality=95, exif=exif)
    for folder in ("Benign", "Pre"):
        (tmp_path / folder).mkdir()
    grey16(1).save(tmp_path / "Benign" / "a.png")
    grey16(2).save(tmp_path / "Pre" / "b.png")
    field.save(tmp_path / "Benign" / "field.jpg", quality=95)
    (tmp_path / "Benign" / "field-rotated.jpg").write_bytes(rotated.getvalue())

    entries = {e.path: e for e in data.build_manifest(tmp_path).entries}

    assert entries["Benign/a.png"].group != entries["Pre/b.png"].group
    assert entries["Benign/field.jpg"].group == entries["Benign/field-rotated.jpg"].group
