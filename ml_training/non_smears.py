"""Images that are not blood smears at all, for testing the out-of-domain flag.

What a portal receives by mistake: an empty field (overexposed, dark, grey), a scanned
document, a screenshot, a photograph (sky and grass, a face-like blob on a wall), a colour
chart, sensor noise. Procedural and deterministic for a seed; nothing is downloaded.
``manage.py make_non_smears DIR`` writes them; tests draw them in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

KINDS = (
    "blank-white",
    "blank-dark",
    "blank-grey",
    "document",
    "screenshot",
    "photo-landscape",
    "photo-wall",
    "colour-chart",
    "noise",
)


def non_smear(kind: str, *, seed: int = 0, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """One image of ``kind`` (see ``KINDS``), uint8 RGB (height, width, 3)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if kind.startswith("blank-"):
        level = {"blank-white": 248, "blank-dark": 10, "blank-grey": 128}[kind]
        img = np.full((h, w, 3), level, np.float64) + rng.normal(0, 1.5, (h, w, 3))
        return np.clip(img, 0, 255).astype(np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "photo-landscape":
        yy = np.linspace(0, 1, h)[:, None, None]
        horizon = 0.45 + 0.1 * rng.random()
        sky = np.array([90, 150, 235]) * (1 - 0.3 * yy)
        grass = np.array([60, 130, 45]) * (0.8 + 0.4 * yy)
        img = np.where(yy < horizon, sky, grass) * np.ones((1, w, 1))
        img += rng.normal(0, 10, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)
    canvas = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if kind == "document":
        for y in range(30, h - 30, 18):
            words = " ".join(["lorem", "ipsum", "dolor", "sit", "amet"][: rng.integers(2, 6)] * 3)
            draw.text((40, y), f"{y // 18:3d}  {words}", fill=(20, 20, 20))
    elif kind == "screenshot":
        canvas.paste((236, 236, 236), (0, 0, w, h))
        draw.rectangle((0, 0, w, h // 16), fill=(30, 90, 200))
        draw.text((10, 2), "Laboratory system - Settings", fill=(255, 255, 255))
        draw.rectangle(
            (w // 32, h // 8, w - w // 32, h // 2), fill=(255, 255, 255), outline=(180, 180, 180)
        )
        for i in range(5):
            draw.text(
                (w // 20, h // 8 + 4 + (h // 14) * i), f"Option {i + 1}: enabled", fill=(0, 0, 0)
            )
        draw.rectangle((w // 32, 7 * h // 8, w // 4, 15 * h // 16), fill=(0, 120, 215))
    elif kind == "photo-wall":
        canvas.paste((180, 160, 130), (0, 0, w, h))
        draw.ellipse((w // 3, h // 5, 2 * w // 3, 4 * h // 5), fill=(225, 185, 160))
        draw.ellipse((w // 2 - 60, h // 2 - 40, w // 2 - 30, h // 2 - 10), fill=(60, 40, 30))
        draw.ellipse((w // 2 + 30, h // 2 - 40, w // 2 + 60, h // 2 - 10), fill=(60, 40, 30))
    elif kind == "colour-chart":
        colours = rng.integers(0, 256, (4, 6, 3))
        for r in range(4):
            for c in range(6):
                x0, y0 = c * w // 6, r * h // 4
                draw.rectangle(
                    (x0, y0, x0 + w // 6, y0 + h // 4), fill=tuple(map(int, colours[r, c]))
                )
    else:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    img = np.asarray(canvas, np.float64) + rng.normal(0, 2, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_non_smears(out_dir: Path, *, per_kind: int = 3, seed: int = 0) -> int:
    """``per_kind`` PNGs of every kind into ``out_dir``; how many were written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            image = non_smear(kind, seed=seed + 100 * k + i)
            Image.fromarray(image).save(out_dir / f"NOT-A-SMEAR-{kind}-{i + 1}.png")
            n += 1
    return n
