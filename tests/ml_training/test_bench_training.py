"""``manage.py bench_training``: a profile's members timed as retrain trains them."""

import re

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.slow


def test_prints_a_row_per_member_and_precision(capsys):
    call_command(
        "bench_training",
        "--profile",
        "smoke",
        "--member",
        "MobileNetV2",
        "--precision",
        "float32",
        "--precision",
        "mixed_bfloat16",
        "--steps",
        "2",
        "--warmup",
        "0",
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
        assert minutes == pytest.approx((64 // batch) * ms_per_step / 60000, abs=0.01)
    assert re.search(r"training steps of 64 images", out)


def test_unknown_member_is_a_clear_error():
    with pytest.raises(CommandError, match="no member"):
        call_command("bench_training", "--profile", "smoke", "--member", "AlexNet")
