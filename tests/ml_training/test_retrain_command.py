"""``retrain``'s options: what a laboratory sets once in its environment applies."""

from pathlib import Path

from ml_training.management.commands.retrain import Command


def _parsed(*args):
    return Command().create_parser("manage.py", "retrain").parse_args(list(args))


def test_the_weights_folder_comes_from_LP_WEIGHTS_DIR_unless_given(settings, tmp_path):
    """LP_WEIGHTS_DIR was read into the settings and used nowhere: set, it changed nothing."""
    settings.LP_WEIGHTS_DIR = str(tmp_path)
    assert _parsed().weights_dir == tmp_path
    assert _parsed("--weights-dir", "/elsewhere").weights_dir == Path("/elsewhere")
    assert _parsed("--from-scratch").from_scratch  # the README's reproduction of v1 still can
    settings.LP_WEIGHTS_DIR = ""
    assert _parsed().weights_dir is None  # from scratch
