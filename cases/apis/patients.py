"""Patients through the API: list, register, show, change."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import selectors, services
from ..models import AuditEvent, Patient
from ..roles import Capability, RoleRequired, require
from .common import (
    FORBIDDEN,
    NOT_FOUND,
    VALIDATION_ERROR,
    ServiceErrorsMixin,
    paginated_response,
)

EventType = AuditEvent.EventType


# --- Patients ---------------------------------------------------------------------------------


class PatientDetailApi(ServiceErrorsMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        url = serializers.HyperlinkedIdentityField(view_name="api:patient-detail")
        images_url = serializers.HyperlinkedIdentityField(view_name="api:patient-images")
        specimens_url = serializers.HyperlinkedIdentityField(view_name="api:patient-specimens")
        lab_id = serializers.IntegerField()
        lab = serializers.CharField(source="lab.name")
        record_number = serializers.CharField()
        display_label = serializers.CharField()
        sex = serializers.ChoiceField(choices=Patient.Sex.choices)
        birth_year = serializers.IntegerField(allow_null=True)
        created_by = serializers.CharField(source="created_by.get_username")
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
        description="A patient of one of your labs (administrators: any patient).",
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
        require(request.user, patient.lab_id, Capability.REGISTER)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_update(
            patient=patient,
            user=request.user,
            data=serializer.validated_data,
            address=services.request_address(request),
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
        description="The patients of your labs (administrators: every patient), newest first.",
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
        lab = serializers.IntegerField(
            required=False,
            help_text="The lab's id; needed only if you register patients in several labs.",
        )
        record_number = serializers.CharField(
            max_length=64, help_text="Institution record number, unique in the lab."
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
        description="The patient belongs to the lab (every member sees it). A technologist or "
        "hematologist of the lab may register; a record number that exists in the lab "
        "answers 400.",
        request=InputSerializer,
        responses={
            201: PatientDetailApi.OutputSerializer,
            400: VALIDATION_ERROR,
            403: FORBIDDEN,
        },
    )
    def post(self, request):
        labs = selectors.lab_list(user=request.user, capability=Capability.REGISTER)
        if not labs:
            raise RoleRequired(Capability.REGISTER, None)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "lab" in data:
            lab = labs.filter(pk=data.pop("lab")).first()
            if lab is None:
                raise serializers.ValidationError({"lab": ["You cannot register patients there."]})
        elif len(labs) == 1:
            lab = labs[0]
        else:
            raise serializers.ValidationError(
                {"lab": ["Say which lab: you register patients in several."]}
            )
        patient = services.patient_create(
            lab=lab,
            created_by=request.user,
            address=services.request_address(request),
            **data,
        )
        return Response(
            PatientDetailApi.OutputSerializer(patient, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )
