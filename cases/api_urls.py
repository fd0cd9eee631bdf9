"""REST API URLs, under ``/api/v1/`` in the ``api`` namespace. Every endpoint but the token
exchange requires authentication (session or ``Authorization: Token <key>``)."""

from django.core.exceptions import ImproperlyConfigured
from django.urls import path
from rest_framework.views import APIView

from . import apis


def serve_together(name: str, *actions: type[APIView]) -> type[APIView]:
    """One URL for several single-action APIViews, e.g. GET list + POST create.

    The result inherits every action's HTTP method; drf-spectacular documents each method
    from its own class. Refused when two actions define the same attribute (an HTTP method, a
    nested ``OutputSerializer``...): one action would silently use the other's.
    """
    owners: dict[str, type[APIView]] = {}
    for action in actions:
        for attr in vars(action):
            if attr.startswith("__"):
                continue
            if attr in owners:
                raise ImproperlyConfigured(
                    f"{action.__name__}.{attr} would shadow {owners[attr].__name__}.{attr}; "
                    "rename one of them."
                )
            owners[attr] = action
    doc = " + ".join(action.__name__ for action in actions)
    return type(name, actions, {"__module__": apis.__name__, "__doc__": doc})


PatientsApi = serve_together("PatientsApi", apis.PatientListApi, apis.PatientCreateApi)
PatientApi = serve_together("PatientApi", apis.PatientDetailApi, apis.PatientUpdateApi)
PatientSpecimensApi = serve_together(
    "PatientSpecimensApi", apis.PatientSpecimenListApi, apis.PatientSpecimenCreateApi
)
SpecimenApi = serve_together("SpecimenApi", apis.SpecimenDetailApi, apis.SpecimenUpdateApi)
SpecimenImagesApi = serve_together(
    "SpecimenImagesApi", apis.SpecimenImageListApi, apis.ImageUploadApi
)
ImageVerdictsApi = serve_together(
    "ImageVerdictsApi", apis.ImageVerdictListApi, apis.ImageVerdictCreateApi
)
LabMembersApi = serve_together("LabMembersApi", apis.LabMemberListApi, apis.LabMemberSetApi)

app_name = "api"
urlpatterns = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/revoke/", apis.TokenRevokeApi.as_view(), name="token-revoke"),
    path("patients/", PatientsApi.as_view(), name="patient-list"),
    path("patients/<int:pk>/", PatientApi.as_view(), name="patient-detail"),
    path("patients/<int:pk>/images/", apis.ImageListApi.as_view(), name="patient-images"),
    path("patients/<int:pk>/specimens/", PatientSpecimensApi.as_view(), name="patient-specimens"),
    path("specimens/<int:pk>/", SpecimenApi.as_view(), name="specimen-detail"),
    path("specimens/<int:pk>/images/", SpecimenImagesApi.as_view(), name="specimen-images"),
    path(
        "specimens/<int:pk>/sign-off/", apis.SpecimenSignOffApi.as_view(), name="specimen-sign-off"
    ),
    path("specimens/<int:pk>/amendments/", apis.SpecimenAmendApi.as_view(), name="specimen-amend"),
    path(
        "specimens/<int:pk>/report.pdf",
        apis.SpecimenReportPdfApi.as_view(),
        name="specimen-report-pdf",
    ),
    path("specimens/<int:pk>/fhir/", apis.SpecimenFhirApi.as_view(), name="specimen-fhir"),
    path("labs/<int:pk>/images.csv", apis.LabImagesCsvApi.as_view(), name="lab-images-csv"),
    path("review-queue/", apis.ReviewQueueApi.as_view(), name="review-queue"),
    path("images/<int:pk>/verdicts/", ImageVerdictsApi.as_view(), name="image-verdicts"),
    path("labs/", apis.LabListApi.as_view(), name="lab-list"),
    path("labs/<int:pk>/qa/", apis.LabQAApi.as_view(), name="lab-qa"),
    path("labs/<int:pk>/members/", LabMembersApi.as_view(), name="lab-members"),
    path("images/<int:pk>/", apis.ImageDetailApi.as_view(), name="image-detail"),
    path("images/<int:pk>/requeue/", apis.ImageRequeueApi.as_view(), name="image-requeue"),
    path(
        "images/<int:pk>/predictions/",
        apis.ImagePredictionListApi.as_view(),
        name="image-predictions",
    ),
    path("predictions/", apis.PredictionListApi.as_view(), name="prediction-list"),
    path("predictions/<int:pk>/", apis.PredictionDetailApi.as_view(), name="prediction-detail"),
]
