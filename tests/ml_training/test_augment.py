import numpy as np
import pytest

from ml_training import augment

pytestmark = pytest.mark.filterwarnings("ignore")


def _data():
    rng = np.random.default_rng(0)
    counts = [3, 9, 6, 4]  # imbalanced
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    images = rng.integers(0, 255, (len(labels), 16, 16, 3)).astype(np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels))  # identity tag (survives flips only in corners)
    return images, labels


def test_balanced_epoch_oversamples_minority_classes():
    images, labels = _data()
    steps = augment.steps_per_epoch(labels, batch_size=8, num_classes=4)
    assert steps == 5  # 4 classes x 9 (largest) / 8
    ds = augment.balanced_train_dataset(
        images, labels, batch_size=8, seed=1, num_classes=4, augment_enabled=False
    )
    seen = np.concatenate([y.numpy() for _, y in ds.take(steps)])
    assert np.bincount(seen, minlength=4).tolist() == [10, 10, 10, 10]


def test_same_seed_same_batches_other_seed_differs():
    images, labels = _data()

    def first(seed):
        ds = augment.balanced_train_dataset(images, labels, batch_size=8, seed=seed, num_classes=4)
        return next(iter(ds))[0].numpy()

    a, b, c = first(3), first(3), first(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augmentation_changes_images_and_keeps_the_range():
    images, labels = _data()
    plain = augment.balanced_train_dataset(
        images, labels, batch_size=8, seed=2, num_classes=4, augment_enabled=False
    )
    aug = augment.balanced_train_dataset(images, labels, batch_size=8, seed=2, num_classes=4)
    x0, y0 = next(iter(plain))
    x1, y1 = next(iter(aug))
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())
    assert not np.allclose(x0.numpy(), x1.numpy())
    assert x1.numpy().min() >= 0 and x1.numpy().max() <= 255


def test_eval_batches_are_untouched():
    images, _ = _data()
    out = np.concatenate(list(augment.eval_batches(images, 5)))
    np.testing.assert_array_equal(out, images.astype(np.float32))


def test_unknown_augmentation_key_is_rejected():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.resolve_augment({"twirl": 1})


def _positional_images(n=8, size=16):
    """Channel 0 encodes the pixel's position (row * size + col), channel 1 the image index."""
    grid = np.arange(size * size).reshape(size, size)
    images = np.zeros((n, size, size, 3), np.uint8)
    images[..., 0] = grid
    images[..., 1] = np.arange(n)[:, None, None]
    return images, np.arange(n) % 4


def test_crop_cuts_each_image_to_its_own_window():
    images, labels = _positional_images()
    ds = augment.balanced_train_dataset(
        images, labels, batch_size=8, seed=5, num_classes=4, augment_enabled=False, crop=6
    )
    x, _ = next(iter(ds))
    x = x.numpy()
    assert x.shape == (8, 6, 6, 3)
    offsets = set()
    for window in x:
        top, left = divmod(int(window[0, 0, 0]), 16)
        # the window is a contiguous 6 x 6 piece of its own image, pixel for pixel
        expected = (np.arange(top, top + 6)[:, None] * 16 + np.arange(left, left + 6)).astype(
            np.float32
        )
        np.testing.assert_array_equal(window[..., 0], expected)
        assert len(set(window[..., 1].ravel().tolist())) == 1
        offsets.add((top, left))
    assert len(offsets) > 1  # every image draws its own window, not one for the batch


def test_crop_is_seeded():
    images, labels = _positional_images()

    def first(seed):
        ds = augment.balanced_train_dataset(
            images, labels, batch_size=8, seed=seed, num_classes=4, crop=6
        )
        return next(iter(ds))[0].numpy()

    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))


def test_crop_larger_than_the_images_is_rejected():
    images, labels = _positional_images()
    with pytest.raises(ValueError, match="crop 20 does not fit images of 16 px"):
        augment.balanced_train_dataset(images, labels, batch_size=4, seed=0, num_classes=4, crop=20)
