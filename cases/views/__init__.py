"""Clinician pages. Thin: read through ``selectors`` (scoped to the user), write through
``services``, and turn results into something a page can show.

Every view requires a login. Every object is fetched through a selector that answers 404 when it
lies outside the user's scope, so another lab's patients, specimens and images do not exist here.
Every read of patient data is recorded in the audit log (``services.audit_read``).
"""

from .images import (
    ImageDetailView,
    ImageFileView,
    ImageReclassifyView,
    ImageRequeueView,
    ImageStatusView,
    ImageThumbnailView,
    SaliencyMapView,
)
from .patients import PatientCreateView, PatientDetailView, PatientEditView, PatientListView
from .reports import LabImagesCsvView, SpecimenReportPdfView, SpecimenReportView
from .review import LabListView, LabMembersView, LabQAView, ReviewQueueView
from .specimens import ImageVerdictView, SpecimenDetailView, SpecimenSignView

__all__ = [
    "ImageDetailView",
    "ImageFileView",
    "ImageReclassifyView",
    "ImageRequeueView",
    "ImageStatusView",
    "ImageThumbnailView",
    "SaliencyMapView",
    "ImageVerdictView",
    "LabImagesCsvView",
    "LabListView",
    "LabMembersView",
    "LabQAView",
    "PatientCreateView",
    "PatientDetailView",
    "PatientEditView",
    "PatientListView",
    "ReviewQueueView",
    "SpecimenDetailView",
    "SpecimenReportPdfView",
    "SpecimenReportView",
    "SpecimenSignView",
]
