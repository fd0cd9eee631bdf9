"""The clinical domain, one module per part: labs, patients and specimens, images and
predictions, human review, the audit log."""

from .audit import AuditEvent
from .base import AppendOnlyError, AppendOnlyModel
from .images import (
    CONTENT_TYPES,
    FORMAT_EXTENSIONS,
    MemberVote,
    Prediction,
    SmearImage,
    smear_upload_to,
    thumbnail_upload_to,
)
from .labs import Lab, Membership
from .patients import Patient, Specimen
from .reports import CaseReport
from .review import ImageFlag, SignOff, Verdict
from .saliency import SaliencyMap

__all__ = [
    "CONTENT_TYPES",
    "FORMAT_EXTENSIONS",
    "AppendOnlyError",
    "AppendOnlyModel",
    "AuditEvent",
    "CaseReport",
    "ImageFlag",
    "Lab",
    "Membership",
    "MemberVote",
    "Patient",
    "SaliencyMap",
    "Prediction",
    "SignOff",
    "SmearImage",
    "Specimen",
    "Verdict",
    "smear_upload_to",
    "thumbnail_upload_to",
]
