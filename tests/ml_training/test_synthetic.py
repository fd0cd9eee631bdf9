import numpy as np
from PIL import Image

from ml_training.data import CLASS_NAMES, build_manifest
from ml_training.synthetic import is_synthetic, make_synthetic_dataset


def test_synthetic_dataset_is_marked_deterministic_and_class_dependent(tmp_path):
    a = tmp_path / "a"
    counts = make_synthetic_dataset(a, per_class=4, seed=1, size=64)
    assert counts == {c: 4 for c in CLASS_NAMES}
    assert is_synthetic(a) and "SYNTHETIC" in (a / "SYNTHETIC.txt").read_text()
    files = sorted(a.rglob("*.png"))
    assert len(files) == 16 and all(f.name.startswith("SYNTHETIC-") for f in files)
    b = tmp_path / "b"
    make_synthetic_dataset(b, per_class=4, seed=1, size=64)
    assert build_manifest(a).fingerprint() == build_manifest(b).fingerprint()
    means = {
        c: np.mean([np.asarray(Image.open(f)).mean(axis=(0, 1)) for f in (a / c).iterdir()], 0)
        for c in CLASS_NAMES
    }
    assert np.abs(means["Benign"] - means["Pro"]).max() > 3
