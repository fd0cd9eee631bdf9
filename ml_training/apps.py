from django.apps import AppConfig


class MlTrainingConfig(AppConfig):
    name = "ml_training"
    verbose_name = "Training pipeline"
