"""Patients through the API: list, register, show, change."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import selectors, services
from ..models import AuditEvent, Patient
from .common import NOT_FOUND, VALIDATION_ERROR, ServiceErrorsMixin, paginated_response

EventType = AuditEvent.EventType


# --- Patients ---------------------------------------------------------------------------------


class PatientDetailApi(ServiceErrorsMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        url = serializers.HyperlinkedIdentityField(view_name="api:patient-detail")
        images_url = serializers.HyperlinkedIdentityField(view_name="api:patient-images")
        record_number = serializers.CharField()
        display_label = serializers.CharField()
        sex = serializers.ChoiceField(choices=Patient.Sex.choices)
        birth_year = serializers.IntegerField(allow_null=True)
        owner = serializers.CharField(source="owner.get_username")
        # Annotated by the selector; a patient created a moment ago has no images yet.
        image_count = serializers.IntegerField(read_only=True, default=0)
        last_upload = serializers.DateTimeField(read_only=True, allow_null=True, default=None)
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Patient"

    @extend_schema(
        summary="Show a patient",
        tags=["patients"],
        description="One of your patients (administrators: any patient).",
        responses={200: OutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        patient = selectors.patient_get(user=request.user, pk=pk)
        services.audit_read(request=request, event_type=EventType.PATIENT_VIEWED, patient=patient)
        return Response(self.OutputSerializer(patient, context={"request": request}).data)


class PatientUpdateApi(ServiceErrorsMixin, APIView):
    class InputSerializer(serializers.Serializer):
        record_number = serializers.CharField(max_length=64, required=False)
        display_label = serializers.CharField(max_length=80, required=False)
        sex = serializers.ChoiceField(choices=Patient.Sex.choices, required=False, allow_blank=True)
        birth_year = serializers.IntegerField(
            min_value=1900, max_value=2100, required=False, allow_null=True
        )

        class Meta:
            ref_name = "PatientUpdate"

    @extend_schema(
        summary="Change a patient",
        tags=["patients"],
        description="Only the fields sent are changed; every change is recorded in the audit "
        "log with its old and new values.",
        request=InputSerializer,
        responses={200: PatientDetailApi.OutputSerializer, 400: VALIDATION_ERROR, 404: NOT_FOUND},
    )
    def patch(self, request, pk):
        patient = selectors.patient_get(user=request.user, pk=pk)  # out of scope: 404 first
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_update(
            patient=patient, user=request.user, data=serializer.validated_data
        )
        return Response(
            PatientDetailApi.OutputSerializer(patient, context={"request": request}).data
        )


class PatientListApi(ServiceErrorsMixin, APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    class FilterSerializer(serializers.Serializer):
        search = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="Part of the record number or of the display label.",
        )

        class Meta:
            ref_name = "PatientFilter"

    @extend_schema(
        summary="List patients",
        tags=["patients"],
        description="Your patients (administrators: every patient), newest first.",
        parameters=[FilterSerializer],
        responses={200: PatientDetailApi.OutputSerializer(many=True)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        patients = selectors.patient_list(user=request.user, **filters.validated_data)
        return paginated_response(
            view=self,
            serializer_class=PatientDetailApi.OutputSerializer,
            queryset=patients,
            request=request,
            audit_event=EventType.PATIENT_LIST_VIEWED,
        )


class PatientCreateApi(ServiceErrorsMixin, APIView):
    class InputSerializer(serializers.Serializer):
        record_number = serializers.CharField(
            max_length=64, help_text="Institution record number, unique in the institution."
        )
        display_label = serializers.CharField(
            max_length=80, help_text="Pseudonymous label shown in lists, e.g. 'Patient A-17'."
        )
        sex = serializers.ChoiceField(
            choices=Patient.Sex.choices, required=False, allow_blank=True, default=""
        )
        birth_year = serializers.IntegerField(
            min_value=1900, max_value=2100, required=False, allow_null=True, default=None
        )

        class Meta:
            ref_name = "PatientCreate"

    @extend_schema(
        summary="Register a patient",
        tags=["patients"],
        description="The patient is yours. A record number that already exists answers 400.",
        request=InputSerializer,
        responses={201: PatientDetailApi.OutputSerializer, 400: VALIDATION_ERROR},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_create(owner=request.user, **serializer.validated_data)
        return Response(
            PatientDetailApi.OutputSerializer(patient, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )
