"""Staff-only model registry pages, under the ``inference`` namespace.

Included by the project as ``path("models/", include("inference.urls"))``.
"""

from django.urls import path

from . import views

app_name = "inference"
urlpatterns = [
    path(
        "versions/<int:version>/artifacts/<path:name>",
        views.version_artifact,
        name="version-artifact",
    ),
]
