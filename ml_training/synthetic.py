"""A small, clearly synthetic smear data set for demos and tests (NOT medical data).

Each image is a procedural "smear field": a light background with pale red-cell rings and one to
three purple "white cells" whose look differs by class (size, nucleus colour, shape, background
tint), so a model can learn something in seconds. Files are named ``SYNTHETIC-<class>-NNN.png``
and the folder gets a ``SYNTHETIC.txt`` saying what it is. Deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ml_training.data import CLASS_NAMES

SYNTHETIC_NOTE = (
    "SYNTHETIC DATA - NOT MEDICAL IMAGES.\n"
    "Procedurally generated smear-like pictures made by ml_training.synthetic for demos and\n"
    "tests of the Leukemia Portal. They carry no diagnostic information; a model trained on\n"
    "them is a DEMO and must never be used to interpret real blood smears.\n"
)

# Per class: background RGB, cell radius range (px at 224), nucleus RGB, nucleus/cell ratio,
# irregularity of the outline.
_LOOK = {
    "Benign": {
        "bg": (236, 232, 242),
        "radius": (10, 14),
        "nucleus": (70, 40, 120),
        "ratio": 0.9,
        "irregular": 0.05,
        "cyto": (150, 120, 200),
    },
    "Early": {
        "bg": (225, 230, 245),
        "radius": (13, 18),
        "nucleus": (95, 70, 170),
        "ratio": 0.8,
        "irregular": 0.1,
        "cyto": (160, 150, 215),
    },
    "Pre": {
        "bg": (238, 236, 228),
        "radius": (16, 22),
        "nucleus": (140, 80, 160),
        "ratio": 0.7,
        "irregular": 0.25,
        "cyto": (190, 150, 205),
    },
    "Pro": {
        "bg": (240, 238, 215),
        "radius": (18, 25),
        "nucleus": (185, 110, 175),
        "ratio": 0.6,
        "irregular": 0.15,
        "cyto": (215, 170, 210),
    },
}


def synthetic_smear(label: str, rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """One synthetic uint8 RGB smear field of class ``label``."""
    look = _LOOK[label]
    scale = size / 224
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.asarray(look["bg"], np.float32) + rng.normal(0, 4, 3)
    # Red cells: pale rings.
    for _ in range(int(rng.integers(25, 45))):
        c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        r = int(rng.integers(9, 13) * scale)
        cv2.circle(img, c, r, (205, 185, 200), -1, lineType=cv2.LINE_AA)
        cv2.circle(img, c, max(1, r - 3), (228, 214, 224), -1, lineType=cv2.LINE_AA)
    # White cells: cytoplasm + nucleus, irregular outline.
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = (int(v) for v in rng.integers(int(30 * scale), size - int(30 * scale), 2))
        radius = rng.uniform(*look["radius"]) * scale
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        wobble = 1 + look["irregular"] * rng.uniform(-1, 1, len(angles))
        pts = np.stack(
            [cx + radius * wobble * np.cos(angles), cy + radius * wobble * np.sin(angles)], axis=1
        ).astype(np.int32)
        cv2.fillPoly(img, [pts], look["cyto"], lineType=cv2.LINE_AA)
        nucleus = (pts - [cx, cy]) * look["ratio"] + [cx, cy] + rng.normal(0, 1, 2)
        colour = np.clip(np.asarray(look["nucleus"]) + rng.normal(0, 8, 3), 0, 255)
        cv2.fillPoly(img, [nucleus.astype(np.int32)], colour.tolist(), lineType=cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic_dataset(
    out_dir: Path, *, per_class: int = 12, seed: int = 0, size: int = 224
) -> dict[str, int]:
    """Write ``per_class`` PNGs per class under ``out_dir/<class>/``; returns counts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE)
    counts = {}
    for ci, label in enumerate(CLASS_NAMES):
        folder = out_dir / label
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng([seed, ci])
        for i in range(per_class):
            rgb = synthetic_smear(label, rng, size)
            cv2.imwrite(
                str(folder / f"SYNTHETIC-{label}-{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            )
        counts[label] = per_class
    return counts


def is_synthetic(data_dir: Path) -> bool:
    return (Path(data_dir) / "SYNTHETIC.txt").is_file()
