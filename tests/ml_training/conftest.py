"""Fixtures for the training pipeline: small synthetic data sets in temporary folders."""

import shutil

import numpy as np
import pytest
from PIL import Image

from ml_training.synthetic import make_synthetic_dataset


@pytest.fixture
def synthetic_dir(tmp_path):
    out = tmp_path / "synthetic"
    make_synthetic_dataset(out, per_class=10, seed=3, size=96)
    return out


@pytest.fixture
def dup_dir(tmp_path):
    """Kaggle-named class folders with one exact and one near duplicate."""
    root = tmp_path / "kaggle"
    make_synthetic_dataset(root, per_class=8, seed=5, size=96)
    renames = {
        "Benign": "Benign",
        "Early": "[Malignant] early Pre-B",
        "Pre": "[Malignant] Pre-B",
        "Pro": "[Malignant] Pro-B",
    }
    for old, new in renames.items():
        if old != new:
            (root / old).rename(root / new)
    pro = root / "[Malignant] Pro-B"
    first = sorted(pro.iterdir())[0]
    shutil.copy(first, pro / "copy-of-first.png")  # byte-identical
    early = root / "[Malignant] early Pre-B"
    src = sorted(early.iterdir())[1]
    rgb = np.asarray(Image.open(src).convert("RGB"))
    Image.fromarray(rgb).save(early / "resaved.jpg", quality=85)  # same field, re-saved
    return root
