"""A developer's ``.env`` configures their portal, never the test suite."""

import os

from leukemia_portal.settings.dotenv import read_dotenv


def test_dotenv_is_read_for_the_portal_and_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("LP_DOTENV", raising=False)
    monkeypatch.delenv("LP_DOTENV_PROBE", raising=False)
    monkeypatch.setenv("LP_DOTENV_KEPT", "from the shell")
    dotenv = tmp_path / ".env"
    dotenv.write_text("LP_DOTENV_PROBE=redis://127.0.0.1:6379/0\nLP_DOTENV_KEPT=from the file\n")
    try:
        assert read_dotenv(dotenv, settings_module="leukemia_portal.settings.local")
        assert os.environ["LP_DOTENV_PROBE"] == "redis://127.0.0.1:6379/0"
        assert os.environ["LP_DOTENV_KEPT"] == "from the shell"
    finally:
        os.environ.pop("LP_DOTENV_PROBE", None)


def test_the_test_settings_never_read_it(tmp_path, monkeypatch):
    """The README's PostgreSQL + Redis ``.env`` sent the suite's tasks to the portal's queue."""
    monkeypatch.delenv("LP_DOTENV_PROBE", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("LP_DOTENV_PROBE=redis://127.0.0.1:6379/0\n")
    assert not read_dotenv(dotenv, settings_module="leukemia_portal.settings.test")
    assert "LP_DOTENV_PROBE" not in os.environ


def test_the_processes_the_tests_start_never_read_it(tmp_path, monkeypatch):
    """A portal on the ``local`` settings started by a fault test read the README's
    PostgreSQL + Redis ``.env`` and migrated the developer's own database."""
    monkeypatch.delenv("LP_DOTENV_PROBE", raising=False)
    assert os.environ["LP_DOTENV"] == "off"  # set by tests/conftest.py, inherited
    dotenv = tmp_path / ".env"
    dotenv.write_text("LP_DOTENV_PROBE=redis://127.0.0.1:6379/0\n")
    assert not read_dotenv(dotenv, settings_module="leukemia_portal.settings.local")
    assert "LP_DOTENV_PROBE" not in os.environ
