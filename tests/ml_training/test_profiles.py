"""The versioned training profiles: every one loads, and the cpu profile keeps its budget."""

import pytest

from inference.architectures import ARCHITECTURES
from ml_training.profiles import available_profiles, load_profile

# retrain's 60-minute budget on 2 cores minus what is not training: manifest and data loading,
# evaluation of test + Segmented twins, registration (3.5 min measured) and a margin.


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_loads_with_all_five_members(name):
    profile = load_profile(name)
    assert sorted(m["architecture"] for m in profile["members"]) == sorted(ARCHITECTURES)


def test_cpu_profile_runs_fixed_epochs_whatever_the_machine_load():
    """No wall-clock cap: a cap turns a busy machine into fewer epochs and other weights."""
    members = load_profile("cpu")["members"]
    assert all(m["max_minutes"] is None for m in members)
    assert all(isinstance(m["epochs"], int) and m["epochs"] >= 1 for m in members)


def _one_member_profile(tmp_path, **member):
    import json

    profile = {
        "name": "one",
        "preprocessing": {"input_size": 128},
        "members": [{"name": "m", "architecture": "Xception", "input_size": 128, **member}],
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(profile))
    return path


def test_train_crop_larger_than_the_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="train_crop 160 is larger than its input_size 128"):
        load_profile(_one_member_profile(tmp_path, train_crop=160))


def test_train_crop_below_the_architecture_minimum_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="Xception needs an input of at least 71"):
        load_profile(_one_member_profile(tmp_path, train_crop=64))
