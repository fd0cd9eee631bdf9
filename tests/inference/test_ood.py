"""The out-of-domain detector's maths, storage and fitting, on arrays (no TensorFlow)."""

import numpy as np
import pytest

from inference import ood
from ml_training import ood_fit
from tests.images import non_smear_arrays, smear_like_array


def test_member_distance_is_the_mahalanobis_distance_to_the_nearest_class_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    precision = (a @ a.T + np.eye(6)).astype(np.float32)
    means = rng.normal(size=(3, 6)).astype(np.float32)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    member = ood.MemberGaussian("m", means, precision, 1.0)
    expected = [
        min(float((xi - mu) @ precision.astype(np.float64) @ (xi - mu)) for mu in means) for xi in x
    ]
    assert member.distances(x) == pytest.approx(expected, rel=1e-4)
    assert member.distances(means) == pytest.approx([0, 0, 0], abs=1e-3)


def test_image_statistics_are_the_lab_moments_the_edge_strength_and_the_violet_share():
    """Each statistic against its definition, written out with NumPy (float64)."""
    import cv2

    batch = np.stack([smear_like_array(3, 64), *non_smear_arrays(64).values()]).astype(np.float32)
    stats = ood.image_statistics(batch)
    for rgb, row in zip(batch, stats, strict=True):
        lab = cv2.cvtColor(np.clip(rgb, 0, 255) / 255.0, cv2.COLOR_RGB2Lab).astype(np.float64)
        flat = lab.reshape(-1, 3)
        gx = cv2.Sobel(lab[..., 0], cv2.CV_64F, 1, 0, ksize=3)
        gy = cv2.Sobel(lab[..., 0], cv2.CV_64F, 0, 1, ksize=3)
        expected = [
            *flat.mean(axis=0),
            *flat.std(axis=0),
            np.hypot(gx, gy).mean(),
            ((flat[:, 1] - flat[:, 2]) > 25.0).mean(),
        ]
        assert row == pytest.approx(expected, rel=1e-5, abs=1e-4)


def _fitted(seed=0, n=300, dims=(8, 5)):
    """A detector fitted on Gaussian 'features' of two members and smear-like statistics."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    centres = [rng.normal(0, 3, size=(4, d)) for d in dims]
    feats = [c[labels] + rng.normal(size=(n, len(c[0]))) for c in centres]
    stats = ood.image_statistics(np.stack([smear_like_array(s, 64) for s in range(60)]))
    val_labels = rng.integers(0, 4, 200)
    val = [c[val_labels] + rng.normal(size=(200, len(c[0]))) for c in centres]
    members = [
        ood_fit.fit_member(f"m{i}", f, labels, 4, v)
        for i, (f, v) in enumerate(zip(feats, val, strict=True))
    ]
    gauss = ood_fit.fit_gaussian(stats[:40])
    draft = ood.OODDetector(members, gauss, 1.0, 1.0)
    t_feat = ood_fit._quantile(draft.feature_scores(val), 0.98)
    t_stat = ood_fit._quantile(gauss.distances(stats[40:]), 0.995)
    return ood.OODDetector(members, gauss, t_feat, t_stat), centres, val, stats[40:]


def test_thresholds_let_the_chosen_share_of_validation_through_and_flag_far_features():
    detector, centres, val, val_stats = _fitted()
    assert (detector.feature_scores(val) / detector.feature_threshold <= 1).mean() >= 0.98
    assert (detector.statistics.distances(val_stats) <= detector.statistics_threshold).all()
    far = [c[[0, 1, 2]] + 25.0 for c in centres]  # far from every class of both members
    far_scores = detector.score(far, val_stats[:3])
    assert far_scores.flagged.all()
    assert (far_scores.features > 1).all() and (far_scores.statistics <= 1).all()


def test_images_that_are_not_smears_are_flagged_by_the_image_statistics():
    detector, centres, val, _ = _fitted()
    arrays = non_smear_arrays(64)
    stats = ood.image_statistics(np.stack(list(arrays.values())).astype(np.float32))
    n = len(arrays)
    scores = detector.score([v[:n] for v in val], stats)  # in-domain features
    assert dict(zip(arrays, scores.statistics > 1, strict=True)) == dict.fromkeys(arrays, True)
    assert scores.flagged.all()


def test_the_detector_file_round_trips_and_refuses_other_files(tmp_path):
    detector, _, val, stats = _fitted()
    path = tmp_path / "ood.npz"
    path.write_bytes(detector.to_bytes())
    loaded = ood.OODDetector.from_file(path, config={"method": ood.METHOD})
    assert loaded.member_names == ["m0", "m1"] and loaded.feature_dims == [8, 5]
    val = [v[: len(stats)] for v in val]
    assert loaded.score(val, stats).score == pytest.approx(detector.score(val, stats).score)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not an out-of-domain detector"):
        ood.OODDetector.from_file(other)


def test_split_features_cuts_the_fused_output_per_member():
    flat = np.arange(2 * 7).reshape(2, 7)
    a, b = ood.split_features(flat, [3, 4])
    assert a.tolist() == [[0, 1, 2], [7, 8, 9]] and b.shape == (2, 4)
    with pytest.raises(ValueError, match="expected 8 feature columns"):
        ood.split_features(flat, [4, 4])


def test_a_field_without_stained_cells_is_outside_the_domain_whatever_its_colours(tmp_path):
    detector, _, val, stats = _fitted()
    index = ood.STATISTICS.index("stained share")
    floor = 0.5 * float(stats[:, index].min())
    with_floor = ood.OODDetector(
        detector.members,
        detector.statistics,
        detector.feature_threshold,
        detector.statistics_threshold,
        {},
        floor,
    )
    typical = np.tile(detector.statistics.mean, (2, 1))  # the training mean: passes the Gaussian
    typical[1, index] = 0.0  # ... but shows no stained pixel
    scores = with_floor.score([v[:2] for v in val], typical)
    assert scores.statistics[0] <= 1 < scores.statistics[1] <= 100
    path = tmp_path / "ood.npz"
    path.write_bytes(with_floor.to_bytes())
    assert ood.OODDetector.from_file(path).min_stained_share == pytest.approx(floor)
