"""The REST API (``/api/v1/``). Thin, after the HackSoft Django Styleguide.

One plain ``APIView`` per action, each with its own nested serializers: validate the input, call
a selector (reads, scoped to the user's labs: another lab's objects answer 404) or a service
(writes, with their audit events), serialize the output. Where REST puts two actions on one URL
(list + create, detail + update, image list + upload), ``api_urls.serve_together`` joins the two
action classes; it refuses classes whose attributes would shadow one another.

Research-use notice: every prediction object in every response (prediction detail and lists, an
image's history, the ``latest_prediction`` of an image) carries a ``research_use_only`` field
with the text of ``RESEARCH_USE_ONLY``. Predictions come with their uncertainty: ``votes`` out
of ``member_count``, ``agreement``, the mean per-class ``probabilities``, each member's vote, and
the model version (``is_demo`` marks an untrained or synthetic-data demonstration ensemble).

Errors: a Django ``ValidationError`` raised by a service becomes a 400 with DRF's usual shape
(``{"field": ["message"]}`` or ``{"non_field_errors": [...]}``); a role that may not act, 403
``{"detail": why}``; an action the rules refuse now (sign a case with unreviewed images), 409.
"""

from .auth import TokenObtainApi, TokenRevokeApi
from .common import RESEARCH_USE_ONLY
from .images import ImageDetailApi, ImageListApi, ImageRequeueApi, ImageUploadApi
from .patients import PatientCreateApi, PatientDetailApi, PatientListApi, PatientUpdateApi
from .predictions import ImagePredictionListApi, PredictionDetailApi, PredictionListApi
from .reports import LabImagesCsvApi, SpecimenFhirApi, SpecimenReportPdfApi
from .review import (
    ImageVerdictCreateApi,
    ImageVerdictListApi,
    LabListApi,
    LabMemberListApi,
    LabMemberSetApi,
    LabQAApi,
    ReviewQueueApi,
)
from .specimens import (
    PatientSpecimenCreateApi,
    PatientSpecimenListApi,
    SpecimenAmendApi,
    SpecimenDetailApi,
    SpecimenImageListApi,
    SpecimenSignOffApi,
    SpecimenUpdateApi,
)

__all__ = [
    "RESEARCH_USE_ONLY",
    "ImageDetailApi",
    "ImageListApi",
    "ImagePredictionListApi",
    "ImageRequeueApi",
    "ImageUploadApi",
    "ImageVerdictCreateApi",
    "ImageVerdictListApi",
    "LabImagesCsvApi",
    "LabListApi",
    "LabMemberListApi",
    "LabMemberSetApi",
    "LabQAApi",
    "PatientSpecimenCreateApi",
    "PatientSpecimenListApi",
    "ReviewQueueApi",
    "SpecimenAmendApi",
    "SpecimenDetailApi",
    "SpecimenFhirApi",
    "SpecimenReportPdfApi",
    "SpecimenImageListApi",
    "SpecimenSignOffApi",
    "SpecimenUpdateApi",
    "PatientCreateApi",
    "PatientDetailApi",
    "PatientListApi",
    "PatientUpdateApi",
    "PredictionDetailApi",
    "PredictionListApi",
    "TokenObtainApi",
    "TokenRevokeApi",
]
