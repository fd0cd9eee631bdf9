"""A base for the commands that take ``--version N``, a model version number."""

from django.core.management.base import BaseCommand


class VersionCommand(BaseCommand):
    """A command whose ``--version N`` names a model version: it replaces Django's own
    ``--version`` (print Django's version), which would otherwise clash with it."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)
