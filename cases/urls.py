"""Clinician pages, under the ``cases`` namespace. Every view requires a login."""

from django.urls import path

from . import views

app_name = "cases"
urlpatterns = [
    path("", views.PatientListView.as_view(), name="patient-list"),
    path("patients/new/", views.PatientCreateView.as_view(), name="patient-create"),
    path("patients/<int:pk>/", views.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<int:pk>/edit/", views.PatientEditView.as_view(), name="patient-edit"),
    path("specimens/<int:pk>/", views.SpecimenDetailView.as_view(), name="specimen-detail"),
    path("specimens/<int:pk>/sign", views.SpecimenSignView.as_view(), name="specimen-sign"),
    path("specimens/<int:pk>/report/", views.SpecimenReportView.as_view(), name="specimen-report"),
    path(
        "specimens/<int:pk>/report.pdf",
        views.SpecimenReportPdfView.as_view(),
        name="specimen-report-pdf",
    ),
    path("labs/<int:pk>/images.csv", views.LabImagesCsvView.as_view(), name="lab-images-csv"),
    path("review/", views.ReviewQueueView.as_view(), name="review-queue"),
    path("labs/", views.LabListView.as_view(), name="lab-list"),
    path("labs/<int:pk>/qa/", views.LabQAView.as_view(), name="lab-qa"),
    path("labs/<int:pk>/members/", views.LabMembersView.as_view(), name="lab-members"),
    path("images/<int:pk>/", views.ImageDetailView.as_view(), name="image-detail"),
    path("images/<int:pk>/verdict", views.ImageVerdictView.as_view(), name="image-verdict"),
    path("images/<int:pk>/file", views.ImageFileView.as_view(), name="image-file"),
    path("images/<int:pk>/thumbnail", views.ImageThumbnailView.as_view(), name="image-thumbnail"),
    path(
        "images/<int:pk>/gradcam/<int:map_pk>.png",
        views.SaliencyMapView.as_view(),
        name="image-saliency",
    ),
    path("images/<int:pk>/status.json", views.ImageStatusView.as_view(), name="image-status"),
    path("images/<int:pk>/requeue", views.ImageRequeueView.as_view(), name="image-requeue"),
    path(
        "images/<int:pk>/reclassify", views.ImageReclassifyView.as_view(), name="image-reclassify"
    ),
]
