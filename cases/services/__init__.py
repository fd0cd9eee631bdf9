"""Writes. Views, the API, the admin and Celery tasks call these; none writes models directly.

One module per domain: ``labs`` (members and roles), ``patients``, ``specimens``, ``uploads``,
``lifecycle`` (image statuses and their moves), ``image_requests`` (what a person may ask of
an image: try again, classify again), ``classification`` (the worker's
side), ``recovery`` (the sweep), ``flags``, ``verdicts``, ``signoff``, ``accounts`` and
``audit``. Each service validates, works in one transaction, writes its audit event in that
transaction, and defers Celery work to ``transaction.on_commit`` so a worker never sees a row
that is not committed yet. The names below are the public surface.
"""

from .accounts import (
    sign_in_failed_recorded,
    sign_in_recorded,
    sign_out_recorded,
    token_is_expired,
    token_issue,
    token_revoke,
    user_ensure,
)
from .audit import audit_event_create, audit_read, request_address
from .classification import (
    Classified,
    Outcome,
    image_classify,
    images_classify_waiting,
    prediction_record,
)
from .flags import flags_refresh
from .image_requests import (
    QUEUE_UNREACHABLE,
    ActionResult,
    image_reclassify,
    image_requeue,
    image_retry,
    reclassify_refusal,
    retry_refusal,
)
from .labs import lab_ensure, membership_remove, membership_set
from .lifecycle import (
    ALLOWED,
    ActionRefused,
    IllegalTransition,
    ImageBusy,
    image_enqueue,
    image_transition,
    recovered_within,
)
from .patients import PATIENT_FIELDS, patient_create, patient_update
from .recovery import RecoveryReport, images_recover
from .reports import (
    ReportIntegrityError,
    ReportRenderError,
    case_report_bytes,
    case_report_store,
    draft_report_pdf,
    signed_report,
)
from .saliency import prediction_explain, saliency_enqueue
from .signoff import SignOffRefused, require_signer, specimen_amend, specimen_sign_out
from .specimens import (
    SPECIMEN_FIELDS,
    SpecimenLocked,
    specimen_create,
    specimen_transition,
    specimen_update,
)
from .uploads import UploadReport, image_thumbnail_ensure, smear_image_upload, smear_images_upload
from .verdicts import verdict_prediction, verdict_record

__all__ = [
    "ALLOWED",
    "PATIENT_FIELDS",
    "SPECIMEN_FIELDS",
    "ReportIntegrityError",
    "ReportRenderError",
    "SignOffRefused",
    "case_report_bytes",
    "case_report_store",
    "draft_report_pdf",
    "signed_report",
    "SpecimenLocked",
    "flags_refresh",
    "lab_ensure",
    "membership_remove",
    "membership_set",
    "require_signer",
    "specimen_amend",
    "specimen_create",
    "specimen_sign_out",
    "specimen_transition",
    "specimen_update",
    "verdict_prediction",
    "verdict_record",
    "prediction_explain",
    "saliency_enqueue",
    "ActionRefused",
    "ActionResult",
    "QUEUE_UNREACHABLE",
    "Classified",
    "IllegalTransition",
    "ImageBusy",
    "Outcome",
    "RecoveryReport",
    "UploadReport",
    "audit_event_create",
    "audit_read",
    "image_classify",
    "images_classify_waiting",
    "image_enqueue",
    "image_reclassify",
    "image_requeue",
    "image_retry",
    "image_thumbnail_ensure",
    "image_transition",
    "images_recover",
    "patient_create",
    "patient_update",
    "prediction_record",
    "reclassify_refusal",
    "recovered_within",
    "request_address",
    "retry_refusal",
    "sign_in_failed_recorded",
    "sign_in_recorded",
    "sign_out_recorded",
    "smear_image_upload",
    "smear_images_upload",
    "token_is_expired",
    "token_issue",
    "token_revoke",
    "user_ensure",
]
