"""Specimens (cases) through the API: register, list, show, correct, list images, sign out,
amend."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import selectors, services
from ..models import AuditEvent, SignOff, Specimen
from ..roles import Capability, require
from ..selectors.review import sign_off_history, specimen_sign_state, specimen_summary
from .common import (
    FORBIDDEN,
    NOT_FOUND,
    REFUSED,
    VALIDATION_ERROR,
    ServiceErrorsMixin,
    paginated_response,
)
from .images import ImageListApi

EventType = AuditEvent.EventType


class SignOffOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="1 is the sign-off; 2, 3… are amendments.")
    interpretation = serializers.ChoiceField(choices=SignOff.Interpretation.choices)
    comment = serializers.CharField()
    amendment_reason = serializers.CharField()
    signed_by = serializers.CharField(source="signed_by.get_username")
    signed_at = serializers.DateTimeField()
    report = serializers.SerializerMethodField(
        help_text="The PDF stored at signing: its SHA-256, size and pages; null for a version "
        "signed before reports were stored."
    )

    class Meta:
        ref_name = "SignOff"

    def get_report(self, sign_off) -> dict | None:
        report = getattr(sign_off, "report", None)
        if report is None:
            return None
        return {"sha256": report.sha256, "bytes": report.size, "pages": report.pages}


class SpecimenDetailApi(ServiceErrorsMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        url = serializers.HyperlinkedIdentityField(view_name="api:specimen-detail")
        images_url = serializers.HyperlinkedIdentityField(view_name="api:specimen-images")
        lab_id = serializers.IntegerField()
        patient_id = serializers.IntegerField()
        accession_number = serializers.CharField()
        collection_date = serializers.DateField(allow_null=True)
        specimen_type = serializers.ChoiceField(choices=Specimen.Type.choices)
        clinical_question = serializers.CharField()
        status = serializers.ChoiceField(choices=Specimen.Status.choices)
        is_signed = serializers.BooleanField(help_text="Signed out (or amended): read-only.")
        created_by = serializers.CharField(source="created_by.get_username")
        created_at = serializers.DateTimeField()
        summary = serializers.SerializerMethodField(
            help_text="Images per model label and per verified label, agreement, open flags."
        )
        sign_offs = serializers.SerializerMethodField(help_text="Newest version first.")
        sign_state = serializers.SerializerMethodField(
            help_text="Send these with a sign-off or amendment: it is refused (409) when the "
            "case moved since you read it."
        )

        class Meta:
            ref_name = "Specimen"

        def get_sign_state(self, specimen) -> dict:
            return specimen_sign_state(specimen=specimen)

        def get_summary(self, specimen) -> dict:
            user = self.context["request"].user
            summary = specimen_summary(images=selectors.image_list(user=user, specimen=specimen))
            summary["open_flags"] = [
                {"reason": code, "label": label, "images": n}
                for code, label, n in summary["open_flags"]
            ]
            return summary

        def get_sign_offs(self, specimen) -> list[dict]:
            return SignOffOutputSerializer(sign_off_history(specimen=specimen), many=True).data

    @extend_schema(
        summary="Show a specimen with its case summary and sign-offs",
        tags=["specimens"],
        responses={200: OutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        services.audit_read(
            request=request, event_type=EventType.SPECIMEN_VIEWED, specimen=specimen
        )
        return Response(self.OutputSerializer(specimen, context={"request": request}).data)


class SpecimenInputSerializer(serializers.Serializer):
    accession_number = serializers.CharField(max_length=64, help_text="Unique in the lab.")
    collection_date = serializers.DateField(required=False, allow_null=True, default=None)
    specimen_type = serializers.ChoiceField(
        choices=Specimen.Type.choices, default=Specimen.Type.PERIPHERAL_BLOOD
    )
    clinical_question = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "SpecimenInput"


class SpecimenUpdateApi(ServiceErrorsMixin, APIView):
    class InputSerializer(SpecimenInputSerializer):
        accession_number = serializers.CharField(max_length=64, required=False)
        collection_date = serializers.DateField(required=False, allow_null=True)
        specimen_type = serializers.ChoiceField(choices=Specimen.Type.choices, required=False)
        clinical_question = serializers.CharField(required=False, allow_blank=True)

        class Meta:
            ref_name = "SpecimenUpdate"

    @extend_schema(
        summary="Correct a specimen",
        tags=["specimens"],
        description="Only before sign-off (then 400); each change is audited.",
        request=InputSerializer,
        responses={
            200: SpecimenDetailApi.OutputSerializer,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def patch(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        require(request.user, specimen.lab_id, Capability.REGISTER)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        specimen = services.specimen_update(
            specimen=specimen,
            user=request.user,
            data=serializer.validated_data,
            address=services.request_address(request),
        )
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        return Response(
            SpecimenDetailApi.OutputSerializer(specimen, context={"request": request}).data
        )


class PatientSpecimenListApi(ServiceErrorsMixin, APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        summary="List a patient's specimens",
        tags=["specimens"],
        responses={200: SpecimenDetailApi.OutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, pk):
        patient = selectors.patient_get(user=request.user, pk=pk)
        return paginated_response(
            view=self,
            serializer_class=SpecimenDetailApi.OutputSerializer,
            queryset=selectors.specimen_list(user=request.user, patient=patient),
            request=request,
            audit_event=EventType.SPECIMEN_LIST_VIEWED,
            patient=patient,
        )


class PatientSpecimenCreateApi(ServiceErrorsMixin, APIView):
    @extend_schema(
        summary="Register a specimen of a patient",
        tags=["specimens"],
        description="A technologist or hematologist of the patient's lab. An accession number "
        "that exists in the lab answers 400.",
        request=SpecimenInputSerializer,
        responses={
            201: SpecimenDetailApi.OutputSerializer,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, pk):
        patient = selectors.patient_get(user=request.user, pk=pk)
        require(request.user, patient.lab_id, Capability.REGISTER)
        serializer = SpecimenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        specimen = services.specimen_create(
            patient=patient,
            created_by=request.user,
            address=services.request_address(request),
            **serializer.validated_data,
        )
        specimen = selectors.specimen_get(user=request.user, pk=specimen.pk)
        return Response(
            SpecimenDetailApi.OutputSerializer(specimen, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class SpecimenImageListApi(ServiceErrorsMixin, APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        summary="List a specimen's images",
        tags=["images"],
        responses={200: ImageListApi.OutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        return paginated_response(
            view=self,
            serializer_class=ImageListApi.OutputSerializer,
            queryset=selectors.image_list(user=request.user, specimen=specimen),
            request=request,
            audit_event=EventType.IMAGE_LIST_VIEWED,
            specimen=specimen,
        )


class SignOffInputSerializer(serializers.Serializer):
    interpretation = serializers.ChoiceField(choices=SignOff.Interpretation.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    seen_verdict = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The specimen's `sign_state.seen_verdict` when you read it: if verdicts were "
        "recorded since, nothing is signed (409).",
    )
    seen_version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The specimen's `sign_state.seen_version` when you read it: if a sign-off "
        "version was recorded since, nothing is signed (409).",
    )

    class Meta:
        ref_name = "SignOffInput"


class SpecimenSignOffApi(ServiceErrorsMixin, APIView):
    @extend_schema(
        summary="Sign a specimen out",
        tags=["specimens"],
        description="A hematologist of the lab, once every image has a verdict or is excluded. "
        "The specimen is read-only afterwards. 409 says why it cannot be signed now; 403 when "
        "your role may not sign. Refusals are audited.",
        request=SignOffInputSerializer,
        responses={
            201: SignOffOutputSerializer,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: REFUSED,
        },
    )
    def post(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        address = services.request_address(request)
        services.require_signer(
            specimen=specimen, user=request.user, amending=False, address=address
        )
        serializer = SignOffInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sign_off = services.specimen_sign_out(
            specimen=specimen,
            user=request.user,
            address=address,
            **serializer.validated_data,
        )
        return Response(SignOffOutputSerializer(sign_off).data, status=status.HTTP_201_CREATED)


class SpecimenAmendApi(ServiceErrorsMixin, APIView):
    class InputSerializer(SignOffInputSerializer):
        reason = serializers.CharField(help_text="Why the signed interpretation changes.")

        class Meta:
            ref_name = "AmendmentInput"

    @extend_schema(
        summary="Amend a signed specimen",
        tags=["specimens"],
        description="A hematologist of the lab; a reason is required. Adds a new signed "
        "version; the earlier versions stay.",
        request=InputSerializer,
        responses={
            201: SignOffOutputSerializer,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: REFUSED,
        },
    )
    def post(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)
        address = services.request_address(request)
        services.require_signer(
            specimen=specimen, user=request.user, amending=True, address=address
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sign_off = services.specimen_amend(
            specimen=specimen,
            user=request.user,
            address=address,
            **serializer.validated_data,
        )
        return Response(SignOffOutputSerializer(sign_off).data, status=status.HTTP_201_CREATED)
