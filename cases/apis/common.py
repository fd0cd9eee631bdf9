"""What every API action shares: the research-use notice, error responses, the pagination
with its read audit, and the prediction serializers."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.response import Response

from .. import services
from ..models import AuditEvent, Prediction
from ..roles import RoleRequired

EventType = AuditEvent.EventType

RESEARCH_USE_ONLY = (
    "Research use only. This is the output of an experimental image classifier, not a "
    "diagnosis: it must not be used to make clinical decisions."
)

NOT_FOUND = OpenApiResponse(
    description="No such object, or it belongs to another lab (never 403, so that another "
    "lab's objects do not reveal their existence)."
)
VALIDATION_ERROR = OpenApiResponse(
    description='Invalid input: `{"field": ["message"]}` or `{"non_field_errors": [...]}`.'
)


FORBIDDEN = OpenApiResponse(
    description='Your role in the lab does not allow this: `{"detail": "why"}`.'
)
REFUSED = OpenApiResponse(description='Refused now: `{"detail": "why"}`; nothing changed.')


class ServiceErrorsMixin:
    # Turns what a service raises into a response (a comment, not a docstring: drf-spectacular
    # would show an inherited docstring as the description): a Django ValidationError -> 400,
    # a role that does not allow the action -> 403, an action the rules refuse now -> 409, a
    # report that cannot be rendered (nothing was signed) or no longer matches its hash -> 500.

    def handle_exception(self, exc):
        if isinstance(exc, DjangoValidationError):
            exc = serializers.ValidationError(serializers.as_serializer_error(exc))
        elif isinstance(exc, RoleRequired) or getattr(exc, "forbidden", False):
            return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
        elif isinstance(exc, services.ActionRefused):
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        elif isinstance(exc, (services.ReportRenderError, services.ReportIntegrityError)):
            return Response({"detail": str(exc)}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        return super().handle_exception(exc)


def paginated_response(*, view, serializer_class, queryset, request, audit_event, **audit):
    """One page of ``queryset``; the read is audited as ``audit_event`` with the ids shown."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    context = {"request": request}
    rows = queryset if page is None else page  # None: pagination switched off in the settings
    services.audit_read(
        request=request, event_type=audit_event, extra={"ids": [row.pk for row in rows]}, **audit
    )
    data = serializer_class(rows, many=True, context=context).data
    return Response(data) if page is None else paginator.get_paginated_response(data)


# --- Output shared by several actions ---------------------------------------------------------


class ModelVersionOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="Version number, as in v3.")
    name = serializers.CharField()
    label = serializers.CharField(help_text="How results pages show it: `v3` or `v3 DEMO`.")
    is_demo = serializers.BooleanField(
        help_text="An untrained or synthetic-data ensemble for demonstrations, never a real model."
    )

    class Meta:
        ref_name = "ModelVersionSummary"


class MemberVoteOutputSerializer(serializers.Serializer):
    member_name = serializers.CharField()
    label = serializers.CharField()
    probabilities = serializers.DictField(child=serializers.FloatField())

    class Meta:
        ref_name = "MemberVote"


class PredictionSummaryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.HyperlinkedIdentityField(view_name="api:prediction-detail")
    image_id = serializers.IntegerField()
    patient_id = serializers.IntegerField(source="image.patient_id")
    specimen_id = serializers.IntegerField(source="image.specimen_id")
    label = serializers.CharField(
        source="shown_label",
        allow_null=True,
        help_text="The majority-voted class; null when the image is outside the model's domain "
        "(the label is withheld: `members_vote` and `votes` are then unreliable).",
    )
    members_vote = serializers.CharField(
        source="label", help_text="The class most members voted for, whether shown or withheld."
    )
    out_of_domain = serializers.BooleanField(
        help_text="The version's out-of-domain detector found the image unlike its training data."
    )
    ood_score = serializers.FloatField(
        allow_null=True,
        help_text="1 is the detector's threshold; above it, outside the domain. Null: the version "
        "has no detector.",
    )
    confidence = serializers.FloatField(help_text="Mean member probability of `members_vote`.")
    probabilities = serializers.DictField(
        child=serializers.FloatField(), help_text="Mean member probability per class."
    )
    votes = serializers.IntegerField(help_text="Members that voted for `members_vote`.")
    member_count = serializers.IntegerField(help_text="Members in the ensemble.")
    agreement = serializers.ChoiceField(choices=Prediction.Agreement.choices)
    model_version = ModelVersionOutputSerializer()
    inference_ms = serializers.FloatField()
    created_at = serializers.DateTimeField()
    research_use_only = serializers.SerializerMethodField(
        help_text="Always present: this result is for research use only, never a diagnosis."
    )

    class Meta:
        ref_name = "PredictionSummary"

    def get_research_use_only(self, prediction) -> str:
        return RESEARCH_USE_ONLY


class PredictionOutputSerializer(PredictionSummaryOutputSerializer):
    member_votes = MemberVoteOutputSerializer(many=True)

    class Meta:
        ref_name = "Prediction"
