"""The project's URLconf plus ``inference.urls`` as the lead is asked to include it
(``path("models/", include("inference.urls"))``), for the admin and artifact-view tests."""

from django.urls import include, path

from leukemia_portal.urls import urlpatterns as project_urlpatterns

urlpatterns = list(project_urlpatterns)
if not any(getattr(p, "namespace", None) == "inference" for p in urlpatterns):
    urlpatterns.append(path("models/", include("inference.urls")))
