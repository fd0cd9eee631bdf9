"""``manage.py bench_training``: a profile's members timed as retrain trains them."""

import re

import pytest
from django.core.management import CommandError, call_command

from ml_training.benchmark import TrainingTiming

pytestmark = pytest.mark.slow


def _quick_bench(*args):
    """bench_training on the smoke profile, two timed steps and no untimed ones."""
    call_command("bench_training", "--profile", "smoke", "--steps", "2", "--warmup", "0", *args)


def test_prints_a_row_per_member_and_precision(capsys):
    _quick_bench(
        "--member",
        "MobileNetV2",
        "--precision",
        "float32",
        "--precision",
        "mixed_bfloat16",
        "--epoch-images",
        "64",
    )
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("MobileNetV2")]
    assert [r[4] for r in rows] == ["float32", "mixed_bfloat16"]
    # the smoke profile's MobileNetV2 is served 48 px and trains on 32 px windows
    assert [r[1:3] for r in rows] == [["48", "32"], ["48", "32"]]
    for row in rows:
        images_per_s, ms_per_step, minutes = float(row[5]), float(row[6]), float(row[8])
        batch = int(row[3])
        assert images_per_s > 0 and ms_per_step > 0
        # the figures agree with each other: img/s = batch / step time
        assert images_per_s == pytest.approx(batch / (ms_per_step / 1000), rel=0.05)
        # the smoke profile fixes 3 steps per epoch: the plan uses them, not 64 images
        assert minutes == pytest.approx(3 * ms_per_step / 60000, abs=0.01)
    assert re.search(r"training steps of 64 images", out)


def test_val_images_without_epoch_images_is_a_clear_error():
    with pytest.raises(CommandError, match="--epoch-images"):
        call_command("bench_training", "--profile", "smoke", "--val-images", "8")


def test_unknown_member_is_a_clear_error():
    with pytest.raises(CommandError, match="no member"):
        call_command("bench_training", "--profile", "smoke", "--member", "AlexNet")


def test_plans_the_members_minutes_with_validation(capsys):
    """--val-images adds each epoch's BatchNorm refresh and validation and plans the member's
    minutes for the profile's epochs: the figures a profile's epoch counts are chosen from."""
    _quick_bench(
        "--member",
        "MobileNetV2",
        "--member",
        "VGG16",
        "--epoch-images",
        "64",
        "--val-images",
        "24",
    )
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("MobileNetV2", "VGG16"))]
    assert len(rows) == 2
    planned = []
    for row in rows:
        ms_step, first_s = float(row[6]), float(row[7])
        minutes, val_s = float(row[8]), float(row[9])
        epochs, member_min = int(row[10]), float(row[11])
        assert val_s > 0 and epochs == 1  # the smoke profile trains one epoch
        # the epochs' steps and validations, plus the first step's tracing (beyond a plain
        # step) and the first validation's: the latter is not printed, so at least the former
        steps_and_validation = epochs * (minutes * 60 + val_s)
        assert member_min * 60 >= steps_and_validation + first_s - ms_step / 1000 - 4
        planned.append(member_min)
    total = re.search(r"Member training, all measured members: ([\d.]+) min", out)
    # each printed figure is rounded to 0.1 min: the rows' sum and the total differ by at most
    # half a unit per row and half for the total
    rounding = 0.05 * (len(planned) + 1) + 1e-9
    assert total and float(total.group(1)) == pytest.approx(sum(planned), abs=rounding)


@pytest.mark.parametrize(("fixed", "steps"), [(None, 10), (4, 4)])
def test_a_profile_that_fixes_the_steps_is_planned_with_them(fixed, steps):
    """An epoch of 160 images at batch 16 is 10 steps, unless the profile fixes them."""
    timing = TrainingTiming(
        member="M",
        input_size=32,
        train_crop=None,
        batch_size=16,
        precision="float32",
        augment=True,
        trace_s=1.0,
        ms_per_step=600.0,
        images_per_s=16 / 0.6,
        steps_per_epoch=fixed,
    )
    assert timing.epoch_minutes(160) == pytest.approx(steps * 0.6 / 60)
