"""The model card's error summary (which names the clinically worst error) and its caveats."""

from ml_training.model_card import error_summary, initial_weights_note, wall_clock_note

NAMES = ["Benign", "Early", "Pre", "Pro"]


def test_counts_missed_leukaemia_and_orders_confusions():
    cm = [[57, 0, 0, 0], [5, 108, 0, 0], [0, 0, 109, 1], [1, 0, 0, 87]]
    text = error_summary(NAMES, cm)
    assert text.startswith(
        "Errors: 7 test images (5 Early as Benign, 1 Pro as Benign, 1 Pre as Pro)"
    )
    assert "(a missed leukaemia): **6 of 311**" in text
    assert "Benign images called malignant: 0 of 57." in text


def test_no_errors():
    cm = [[3, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]
    assert error_summary(NAMES, cm) == "No test image was misclassified."


def test_wall_clock_note_names_the_capped_members_only():
    info = {
        "A": {"stopped": "time budget (9 min): 8 epochs"},
        "B": {"stopped": "completed"},
        "C": {"stopped": "early stopping after 4 epochs without improvement"},
        "D": {"stopped": "time budget (16 min): 3 epochs"},
    }
    assert wall_clock_note(info).startswith("**Reruns differ**: A, D stopped on their wall-clock")
    assert wall_clock_note({"B": info["B"], "C": info["C"]}) is None


def test_initial_weights_note_follows_the_run():
    profile = {
        "preprocessing": {"input_size": 224},
        "members": [
            {"name": "MobileNetV2", "input_size": 224},
            {"name": "VGG16", "input_size": 64},
        ],
    }
    assert initial_weights_note({"weights_dir": None}, profile) == (
        "Members were trained from scratch (no ImageNet weights); VGG16 (64 px) see the 224 px "
        "field downscaled, to fit the profile's time budget."
    )
    profile["members"].pop()
    assert initial_weights_note({"weights_dir": "/w"}, profile) == (
        "Members were fine-tuned from ImageNet weights read from `--weights-dir`."
    )
