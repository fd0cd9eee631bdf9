"""Smear images through the API: upload, list, show, requeue."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import selectors, services
from ..models import AuditEvent, SmearImage
from ..roles import Capability, require
from .common import (
    FORBIDDEN,
    NOT_FOUND,
    PredictionOutputSerializer,
    PredictionSummaryOutputSerializer,
    ServiceErrorsMixin,
    paginated_response,
)

EventType = AuditEvent.EventType


# --- Smear images -----------------------------------------------------------------------------


class ImageDetailApi(ServiceErrorsMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status_url = serializers.HyperlinkedIdentityField(
            view_name="api:image-detail", help_text="This endpoint: poll it until `is_finished`."
        )
        predictions_url = serializers.HyperlinkedIdentityField(view_name="api:image-predictions")
        patient_id = serializers.IntegerField()
        patient_url = serializers.HyperlinkedRelatedField(
            source="patient", view_name="api:patient-detail", read_only=True
        )
        specimen_id = serializers.IntegerField()
        specimen_url = serializers.HyperlinkedRelatedField(
            source="specimen", view_name="api:specimen-detail", read_only=True
        )
        verdicts_url = serializers.HyperlinkedIdentityField(view_name="api:image-verdicts")
        original_name = serializers.CharField()
        status = serializers.ChoiceField(choices=SmearImage.Status.choices)
        is_finished = serializers.BooleanField(help_text="`done` or `failed`.")
        error_message = serializers.CharField(
            help_text="Why classification failed or is delayed; empty otherwise."
        )
        attempts = serializers.IntegerField()
        width = serializers.IntegerField()
        height = serializers.IntegerField()
        format = serializers.CharField()
        size_bytes = serializers.IntegerField()
        sha256 = serializers.CharField()
        uploaded_by = serializers.CharField(source="uploaded_by.get_username")
        uploaded_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()
        latest_prediction = serializers.SerializerMethodField()

        class Meta:
            ref_name = "SmearImage"

        @extend_schema_field(PredictionOutputSerializer(allow_null=True))
        def get_latest_prediction(self, image):
            # Predictions come newest first (model ordering, and the selector's prefetch).
            latest = next(iter(image.predictions.all()), None)
            if latest is None:
                return None
            return PredictionOutputSerializer(latest, context=self.context).data

    @extend_schema(
        summary="Show an image: status, metadata and latest result",
        tags=["images"],
        description="Poll it after an upload until `is_finished`. `latest_prediction` is "
        "null until the image has been classified; `error_message` says why it failed.",
        responses={200: OutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        services.audit_read(request=request, event_type=EventType.IMAGE_VIEWED, image=image)
        return Response(self.OutputSerializer(image, context={"request": request}).data)


class RequeuedOutputSerializer(ImageDetailApi.OutputSerializer):
    """The image as ``ImageDetailApi`` gives it, and what the request did (for the schema)."""

    detail = serializers.CharField(
        help_text="What was done, in a sentence; it says so when the classification queue "
        "could not be reached (the image is queued and is sent automatically later)."
    )
    sent = serializers.BooleanField(
        help_text="False: queued, but the task could not be sent yet (the broker is down)."
    )

    class Meta:
        ref_name = "SmearImageRequeued"


class ImageRequeueApi(ServiceErrorsMixin, APIView):
    @extend_schema(
        summary="Queue an image again for classification",
        tags=["images"],
        description="After a failure, when the image is stuck (processing past the time "
        "limit, or waiting with no task in flight), or to classify it with the newly active "
        "model version. 202 when it was queued; 409 with the reason when the rules refuse "
        "(e.g. it is being classified right now, or already classified by the active model).",
        request=None,
        responses={
            202: RequeuedOutputSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(description='Refused: `{"detail": "why"}`; nothing changed.'),
        },
    )
    def post(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        try:
            result = services.image_requeue(
                image_id=image.pk, user=request.user, address=services.request_address(request)
            )
        except services.ActionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        image = selectors.image_get(user=request.user, pk=pk)
        data = ImageDetailApi.OutputSerializer(image, context={"request": request}).data
        return Response(
            {**data, "detail": result.message, "sent": result.sent},
            status=status.HTTP_202_ACCEPTED,
        )


class ImageListApi(ServiceErrorsMixin, APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status_url = serializers.HyperlinkedIdentityField(view_name="api:image-detail")
        original_name = serializers.CharField()
        status = serializers.ChoiceField(choices=SmearImage.Status.choices)
        error_message = serializers.CharField()
        uploaded_at = serializers.DateTimeField()
        latest_prediction = serializers.SerializerMethodField()

        class Meta:
            ref_name = "SmearImageSummary"

        @extend_schema_field(PredictionSummaryOutputSerializer(allow_null=True))
        def get_latest_prediction(self, image):
            latest = next(iter(image.predictions.all()), None)  # prefetched, newest first
            if latest is None:
                return None
            return PredictionSummaryOutputSerializer(latest, context=self.context).data

    @extend_schema(
        summary="List a patient's images",
        tags=["images"],
        description="Newest first, each with its latest result (member votes: see the image).",
        responses={200: OutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, pk):
        patient = selectors.patient_get(user=request.user, pk=pk)
        images = selectors.image_list(user=request.user, patient=patient)
        return paginated_response(
            view=self,
            serializer_class=self.OutputSerializer,
            queryset=images,
            request=request,
            audit_event=EventType.IMAGE_LIST_VIEWED,
            patient=patient,
        )


class ImageUploadApi(ServiceErrorsMixin, APIView):
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        # Empty files are let through here so that the service reports them with the others.
        files = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True),
            required=False,
            help_text="One or more smear images (JPEG, PNG, TIFF or BMP); repeat the field.",
        )
        file = serializers.FileField(
            allow_empty_file=True, required=False, help_text="A single image; also accepted."
        )

        class Meta:
            ref_name = "SmearImageUpload"

    class AcceptedSerializer(serializers.Serializer):
        class StoredSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            original_name = serializers.CharField()
            status = serializers.ChoiceField(choices=SmearImage.Status.choices)
            status_url = serializers.HyperlinkedIdentityField(
                view_name="api:image-detail", help_text="Poll it for the result."
            )

            class Meta:
                ref_name = "SmearImageStored"

        images = StoredSerializer(many=True, source="stored")
        rejected = serializers.ListField(
            child=serializers.CharField(), help_text="One message per file that was not stored."
        )

        class Meta:
            ref_name = "SmearImageUploadAccepted"

    class RejectedSerializer(serializers.Serializer):
        detail = serializers.CharField()
        rejected = serializers.ListField(child=serializers.CharField())

        class Meta:
            ref_name = "SmearImageUploadRejected"

    @extend_schema(
        summary="Upload smear images into a specimen",
        tags=["images"],
        description="A technologist or hematologist of the lab uploads into a specimen that is "
        "not signed out (signed out: 400). "
        "`multipart/form-data` with one or more `files` fields (a single `file` is "
        "accepted too). Every file is checked on its own: a valid one is stored and queued for "
        "classification, an invalid one is reported in `rejected` and leaves nothing behind, "
        "as does one the server could not store (a storage fault: its message says to tell an "
        "administrator). 202 when at least one image was stored; 400 when none was; 503 when "
        "none was because the server could not store any of them (try again later).",
        request={"multipart/form-data": InputSerializer},
        responses={
            202: AcceptedSerializer,
            400: OpenApiResponse(
                RejectedSerializer,
                description="No file was stored; `rejected` says why. (A malformed form, e.g. "
                'text where a file is expected, gets the usual `{"files": ["message"]}`.)',
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
            503: OpenApiResponse(
                RejectedSerializer,
                description="No file was stored, each for a storage fault on the server.",
            ),
        },
    )
    def post(self, request, pk):
        specimen = selectors.specimen_get(user=request.user, pk=pk)  # out of scope: 404 first
        require(request.user, specimen.lab_id, Capability.REGISTER)  # a role refusal: 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        files = list(serializer.validated_data.get("files", []))
        if "file" in serializer.validated_data:
            files.append(serializer.validated_data["file"])
        report = services.smear_images_upload(
            specimen=specimen,
            files=files,
            uploaded_by=request.user,
            address=services.request_address(request),
        )
        if not report.stored:
            data = {"detail": "No image was stored.", "rejected": report.rejected}
            code = status.HTTP_400_BAD_REQUEST
            if report.server_faults == len(report.rejected):  # nothing wrong with the files
                code = status.HTTP_503_SERVICE_UNAVAILABLE
            return Response(self.RejectedSerializer(data).data, status=code)
        return Response(
            self.AcceptedSerializer(report, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )
