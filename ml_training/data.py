"""The data set: discover labelled images, build a manifest, deduplicate, split without leaks.

A data directory holds one sub-folder per class. Our own names (``Benign``, ``Early``, ``Pre``,
``Pro``) and the Kaggle release's (``Benign``, ``[Malignant] early Pre-B``, ``[Malignant] Pre-B``,
``[Malignant] Pro-B``) map onto the same four classes.

Deduplication happens before any split:

* byte-identical files (same sha256) are collapsed to one entry (the first by path); if the
  copies carry different labels, every copy is dropped, as the label cannot be trusted;
* near-identical images (perceptual hashes within ``NEAR_DUP_MAX_DISTANCE`` bits, i.e. the same
  field re-saved) are kept but share a ``group`` id, and a split never separates a group.

The manifest, the split and the data fingerprint are written into every run folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from inference.preprocessing import IMAGE_SUFFIXES

CLASS_NAMES = ["Benign", "Early", "Pre", "Pro"]
PHASH_SIZE = 8  # 64-bit DCT perceptual hash
NEAR_DUP_MAX_DISTANCE = 10  # bits of 64: on the Taleqani data no pair this close crosses classes


@dataclass
class ManifestEntry:
    path: str  # relative to the data directory, with forward slashes
    label: str
    sha256: str
    phash: str  # hex
    width: int
    height: int
    bytes: int
    group: int = -1  # near-duplicate group id (every entry has one; singletons are their own)
    duplicates: list[str] = field(default_factory=list)  # byte-identical copies dropped for it


@dataclass
class Manifest:
    root: str
    entries: list[ManifestEntry]
    dropped: list[dict]  # files removed by deduplication, with the reason
    class_names: list[str]

    @property
    def labels(self) -> np.ndarray:
        return np.array([CLASS_NAMES.index(e.label) for e in self.entries], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([e.group for e in self.entries], dtype=np.int64)

    def abspath(self, entry: ManifestEntry) -> Path:
        return Path(self.root) / entry.path

    def paths(self, indices=None) -> list[Path]:
        idx = range(len(self.entries)) if indices is None else indices
        return [self.abspath(self.entries[i]) for i in idx]

    def fingerprint(self) -> str:
        """sha256 over the sorted (path, label, content hash) lines: the data a run saw."""
        h = hashlib.sha256()
        for e in sorted(self.entries, key=lambda e: e.path):
            h.update(f"{e.path}\t{e.label}\t{e.sha256}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict:
        groups = Counter(e.group for e in self.entries)
        return {
            "images": len(self.entries),
            "per_class": {c: sum(e.label == c for e in self.entries) for c in CLASS_NAMES},
            "exact_duplicates_dropped": sum(d["reason"] == "exact_duplicate" for d in self.dropped),
            "label_conflicts_dropped": sum(d["reason"] == "label_conflict" for d in self.dropped),
            "near_duplicate_groups": sum(1 for n in groups.values() if n > 1),
            "images_in_near_duplicate_groups": sum(n for n in groups.values() if n > 1),
            "near_duplicate_max_distance_bits": NEAR_DUP_MAX_DISTANCE,
            "fingerprint": self.fingerprint(),
        }

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["path", "label", "sha256", "phash", "width", "height", "bytes", "group"]
            )
            for e in self.entries:
                writer.writerow(
                    [e.path, e.label, e.sha256, e.phash, e.width, e.height, e.bytes, e.group]
                )
        payload = {
            "root": self.root,
            "class_names": self.class_names,
            "summary": self.summary(),
            "entries": [asdict(e) for e in self.entries],
            "dropped": self.dropped,
        }
        (folder / "manifest.json").write_text(json.dumps(payload, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        payload = json.loads((Path(folder) / "manifest.json").read_text())
        return cls(
            root=payload["root"],
            entries=[ManifestEntry(**e) for e in payload["entries"]],
            dropped=payload["dropped"],
            class_names=payload["class_names"],
        )


def canonical_class(folder_name: str) -> str | None:
    """Map a class folder name (ours or the Kaggle release's) to a class, or None."""
    name = folder_name.strip().lower()
    name = re.sub(r"\[?malignant\]?", " ", name)
    tokens = set(re.split(r"[^a-z0-9]+", name)) - {""}
    if "benign" in tokens or "hematogone" in tokens or "hematogones" in tokens:
        return "Benign"
    if "early" in tokens:
        return "Early"
    if "pro" in tokens:
        return "Pro"
    if "pre" in tokens:
        return "Pre"
    return None


def resolve_data_dir(data_dir: Path) -> Path:
    """The folder holding the class sub-folders; a dataset root with ``Original/`` is accepted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    if _class_folders(data_dir):
        return data_dir
    if (data_dir / "Original").is_dir() and _class_folders(data_dir / "Original"):
        return data_dir / "Original"
    raise ValueError(
        f"{data_dir} has no class sub-folders; expected some of {CLASS_NAMES} "
        "(or the Kaggle names such as '[Malignant] Pre-B')"
    )


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = canonical_class(sub.name)
        if label is not None:
            found.setdefault(label, []).append(sub)
    return found


def discover(data_dir: Path) -> list[tuple[Path, str]]:
    """(path, class) for every image under the class sub-folders, sorted by path."""
    root = resolve_data_dir(data_dir)
    items = []
    for label, folders in _class_folders(root).items():
        for folder in folders:
            for path in folder.rglob("*"):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    items.append((path, label))
    if not items:
        raise ValueError(f"no images found under {root}")
    return sorted(items, key=lambda item: str(item[0]))


def _hash_file(path: Path) -> tuple[str, str, int, int, int]:
    """The file's sha256, and the perceptual hash and size of the pixels the model sees
    (``decode_image``: EXIF orientation applied, 16-bit scaled), so that near-duplicate groups
    are found on those pixels: Pillow's own ``convert("RGB")`` clipped 16-bit images to white
    (different images hashed alike) and ignored the orientation (a rotated re-save of a field
    escaped its group, so the same field could fall in train and test)."""
    import imagehash
    from PIL import Image

    from inference.decoding import decode_image

    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    pixels = decode_image(raw)
    height, width = pixels.shape[:2]
    ph = imagehash.phash(Image.fromarray(pixels), hash_size=PHASH_SIZE)
    return sha, str(ph), width, height, len(raw)


def build_manifest(data_dir: Path, *, near_dup_max_distance: int = NEAR_DUP_MAX_DISTANCE):
    """Hash every image, drop exact duplicates, group near-duplicates."""
    root = resolve_data_dir(data_dir)
    raw_entries = []
    for path, label in discover(root):
        sha, ph, width, height, size = _hash_file(path)
        rel = path.relative_to(root).as_posix()
        raw_entries.append(ManifestEntry(rel, label, sha, ph, width, height, size))

    by_sha: dict[str, list[ManifestEntry]] = {}
    for e in raw_entries:
        by_sha.setdefault(e.sha256, []).append(e)
    entries, dropped = [], []
    for copies in by_sha.values():
        if len({c.label for c in copies}) > 1:
            dropped += [{"path": c.path, "reason": "label_conflict"} for c in copies]
            continue
        keep = copies[0]
        keep.duplicates = [c.path for c in copies[1:]]
        dropped += [
            {"path": c.path, "reason": "exact_duplicate", "kept": keep.path} for c in copies[1:]
        ]
        entries.append(keep)
    entries.sort(key=lambda e: e.path)
    for gid, members in enumerate(
        near_duplicate_groups([e.phash for e in entries], near_dup_max_distance)
    ):
        for i in members:
            entries[i].group = gid
    return Manifest(str(root), entries, dropped, list(CLASS_NAMES))


def phash_distances(hashes: list[str]) -> np.ndarray:
    """Pairwise Hamming distances (bits) between hex perceptual hashes."""
    ints = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    xor = ints[:, None] ^ ints[None, :]
    return np.bitwise_count(xor).astype(np.int16)


def near_duplicate_groups(hashes: list[str], max_distance: int) -> list[list[int]]:
    """Connected components of the graph 'Hamming distance <= max_distance', in index order."""
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n:
        dist = phash_distances(hashes)
        rows, cols = np.nonzero(np.triu(dist <= max_distance, k=1))
        for a, b in zip(rows.tolist(), cols.tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    return sorted(comps.values(), key=lambda c: c[0])


# --- Splitting ---------------------------------------------------------------------------------


@dataclass
class Split:
    train: list[int]
    val: list[int]
    test: list[int]
    seed: int
    method: str = "StratifiedGroupKFold"

    def to_json(self, manifest: Manifest) -> dict:
        def describe(idx):
            labels = [manifest.entries[i].label for i in idx]
            return {c: labels.count(c) for c in CLASS_NAMES}

        return {
            "seed": self.seed,
            "method": self.method,
            "counts": {k: describe(getattr(self, k)) for k in ("train", "val", "test")},
            "train": [manifest.entries[i].path for i in self.train],
            "val": [manifest.entries[i].path for i in self.val],
            "test": [manifest.entries[i].path for i in self.test],
        }

    def save(self, folder: Path, manifest: Manifest) -> None:
        (Path(folder) / "split.json").write_text(json.dumps(self.to_json(manifest), indent=1))

    def digest(self, manifest: Manifest) -> str:
        """sha256 of which images trained, chose and tested a run (its three file lists):
        recorded with a version's test figures, so that a later evaluation can tell whether a
        run folder's "test" images are held out from that version."""
        payload = self.to_json(manifest)
        lists = {k: sorted(payload[k]) for k in ("train", "val", "test")}
        return hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest()

    @classmethod
    def load(cls, folder: Path, manifest: Manifest) -> Split:
        payload = json.loads((Path(folder) / "split.json").read_text())
        index = {e.path: i for i, e in enumerate(manifest.entries)}
        return cls(
            train=[index[p] for p in payload["train"]],
            val=[index[p] for p in payload["val"]],
            test=[index[p] for p in payload["test"]],
            seed=payload["seed"],
            method=payload.get("method", "StratifiedGroupKFold"),
        )


def _one_group_fold(labels, groups, indices, fraction, seed):
    """Pick about ``fraction`` of ``indices`` as one stratified group fold; returns (rest, fold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    indices = np.asarray(indices)
    n_splits = max(2, round(1.0 / fraction))
    # Fewer groups than folds in a class only happens on toy data; StratifiedGroupKFold copes.
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rest, fold = next(splitter.split(indices, labels[indices], groups[indices]))
    return indices[rest], indices[fold]


def check_enough_images(manifest: Manifest, *, val_fraction: float, test_fraction: float):
    """Refuse, with the counts, a data set too small to split into train, validation and test
    (e.g. a first ``export_reviewed`` of a few verified images)."""
    needed = max(2, round(1.0 / min(val_fraction, test_fraction))) + 1
    have = len(manifest.entries)
    if have < needed:
        per_class = ", ".join(f"{c} {n}" for c, n in manifest.summary()["per_class"].items())
        raise ValueError(
            f"{have} images ({per_class}) are too few to split into training, validation and "
            f"test sets: at least {needed} are needed, and many more to train anything useful."
        )


def split_manifest(
    manifest: Manifest,
    *,
    seed: int,
    val_fraction=0.15,
    test_fraction=0.15,
    cv_folds: int | None = None,
    cv_fold: int | None = None,
):
    """Train / validation / test, stratified by class, near-duplicate groups kept on one side.

    With ``cv_folds`` K and ``cv_fold`` I (1..K) the run is fold I of a cross-validation on the
    development images: the internal test split (the one a normal run with this seed and
    ``test_fraction`` holds out) is left out of every fold, the rest is cut into K stratified
    group folds (same seed), and fold I is this run's held-out split, so K runs test every
    development image exactly once and none of them sees the internal test split. The
    validation split is carved from the other folds in the same proportion as a normal run
    carves it from the development images.
    """
    labels, groups = manifest.labels, manifest.groups
    all_idx = np.arange(len(manifest.entries))
    method = "StratifiedGroupKFold"
    check_cv(cv_folds, cv_fold)
    check_enough_images(manifest, val_fraction=val_fraction, test_fraction=test_fraction)
    rest, test = _one_group_fold(labels, groups, all_idx, test_fraction, seed)
    val_share = val_fraction / (1 - test_fraction)  # of the images left for training
    if cv_folds is not None:
        folds = group_kfold(labels, groups, rest, k=cv_folds, seed=seed)
        rest, test = folds[cv_fold - 1]
        method = (
            f"StratifiedGroupKFold, test = fold {cv_fold} of {cv_folds} of the development "
            "images (the internal test split left out)"
        )
    train, val = _one_group_fold(labels, groups, rest, val_share, seed + 1)
    return Split(
        sorted(train.tolist()), sorted(val.tolist()), sorted(test.tolist()), seed, method=method
    )


def check_cv(cv_folds: int | None, cv_fold: int | None) -> None:
    """Both or neither; at least 3 folds (two would leave half the data untrained on)."""
    if (cv_folds is None) != (cv_fold is None):
        raise ValueError("cross-validation needs both the number of folds and the fold to test")
    if cv_folds is not None and not (cv_folds >= 3 and 1 <= cv_fold <= cv_folds):
        raise ValueError(
            f"fold {cv_fold} of {cv_folds}: need at least 3 folds and 1 <= fold <= folds"
        )


def group_kfold(labels, groups, indices, *, k: int, seed: int):
    """Stratified group k-fold over ``indices``: [(rest, held_out), ...] as index arrays."""
    from sklearn.model_selection import StratifiedGroupKFold

    indices = np.asarray(indices)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        (indices[a], indices[b])
        for a, b in splitter.split(indices, labels[indices], groups[indices])
    ]


def sibling_path(manifest: Manifest, entry: ManifestEntry, tree: str = "Segmented") -> Path | None:
    """The same file in a sibling tree (``Original/x`` → ``Segmented/x``), if it exists."""
    root = Path(manifest.root)
    candidate = root.parent / tree / entry.path
    return candidate if candidate.is_file() else None
