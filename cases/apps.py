from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Patients, smear images and predictions"

    def ready(self):
        # Connect the receiver that queues waiting images when a model version is activated.
        from . import signals  # noqa: F401
