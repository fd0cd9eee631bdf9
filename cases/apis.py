"""The REST API (``/api/v1/``). Thin, after the HackSoft Django Styleguide.

One plain ``APIView`` per action, each with its own nested serializers: validate the input, call
a selector (reads, scoped to the user: another clinician's objects answer 404) or a service
(writes, with their audit events), serialize the output. Where REST puts two actions on one URL
(list + create, detail + update, image list + upload), ``api_urls.serve_together`` joins the two
action classes; it refuses classes whose attributes would shadow one another.

Research-use notice: every prediction object in every response (prediction detail and lists, an
image's history, the ``latest_prediction`` of an image) carries a ``research_use_only`` field
with the text of ``RESEARCH_USE_ONLY``. Predictions come with their uncertainty: ``votes`` out
of ``member_count``, ``agreement``, the mean per-class ``probabilities``, each member's vote, and
the model version (``is_demo`` marks an untrained or synthetic-data demonstration ensemble).

Errors: a Django ``ValidationError`` raised by a service becomes a 400 with DRF's usual shape
(``{"field": ["message"]}`` or ``{"non_field_errors": [...]}``).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from leukemia_portal.lockout import lockout_response

from . import selectors, services
from .models import AuditEvent, Patient, Prediction, SmearImage

EventType = AuditEvent.EventType

RESEARCH_USE_ONLY = (
    "Research use only. This is the output of an experimental image classifier, not a "
    "diagnosis: it must not be used to make clinical decisions."
)

NOT_FOUND = OpenApiResponse(
    description="No such object, or it belongs to another clinician (never 403, so that "
    "another clinician's objects do not reveal their existence)."
)
VALIDATION_ERROR = OpenApiResponse(
    description='Invalid input: `{"field": ["message"]}` or `{"non_field_errors": [...]}`.'
)


class ServiceErrorsMixin:
    # Turns a Django ValidationError raised by a service into a DRF 400 response. (A comment,
    # not a docstring: drf-spectacular would show an inherited docstring as the description.)

    def handle_exception(self, exc):
        if isinstance(exc, DjangoValidationError):
            exc = serializers.ValidationError(serializers.as_serializer_error(exc))
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
    label = serializers.CharField(help_text="The majority-voted class.")
    confidence = serializers.FloatField(help_text="Mean member probability of `label`.")
    probabilities = serializers.DictField(
        child=serializers.FloatField(), help_text="Mean member probability per class."
    )
    votes = serializers.IntegerField(help_text="Members that voted for `label`.")
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


# --- Authentication ---------------------------------------------------------------------------


class TokenObtainApi(ObtainAuthToken):
    """DRF's ``obtain_auth_token`` with an expiry. Password guessing is stopped by the same
    lockout as the login pages (django-axes, counted in the database for every process)."""

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")

        class Meta:
            ref_name = "Token"

    @extend_schema(
        summary="Obtain an API token",
        tags=["auth"],
        description="Exchange a username and password for the user's API token. The same "
        "token is returned until it expires (`LP_API_TOKEN_TTL_HOURS`, 8 hours by default), "
        "is revoked, or the user signs out of the portal. After 5 failed attempts for one "
        "account or from one address, sign-in is refused for 15 minutes (429).",
        request=AuthTokenSerializer,
        responses={
            200: OutputSerializer,
            400: VALIDATION_ERROR,
            429: OpenApiResponse(description="Too many failed attempts; try again later."),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        valid = serializer.is_valid()
        # django-axes flags a locked-out attempt on the request it was given: here DRF's
        # wrapper, which its middleware does not see. Answer the lockout here.
        if getattr(request, "axes_locked_out", False):
            return lockout_response(request._request)
        if not valid:
            raise serializers.ValidationError(serializer.errors)
        token = services.token_issue(
            user=serializer.validated_data["user"], address=services.request_address(request)
        )
        return Response({"token": token.key})


class TokenRevokeApi(APIView):
    @extend_schema(
        summary="Revoke your API token",
        tags=["auth"],
        description="The token stops working at once. 204 whether or not a token existed.",
        request=None,
        responses={204: None},
    )
    def post(self, request):
        services.token_revoke(user=request.user, address=services.request_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


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
            202: ImageDetailApi.OutputSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(description='Refused: `{"detail": "why"}`; nothing changed.'),
        },
    )
    def post(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        try:
            services.image_requeue(
                image_id=image.pk, user=request.user, address=services.request_address(request)
            )
        except services.ActionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        image = selectors.image_get(user=request.user, pk=pk)
        return Response(
            ImageDetailApi.OutputSerializer(image, context={"request": request}).data,
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
        summary="Upload smear images",
        tags=["images"],
        description="`multipart/form-data` with one or more `files` fields (a single `file` is "
        "accepted too). Every file is checked on its own: a valid one is stored and queued for "
        "classification, an invalid one is reported in `rejected` and leaves nothing behind. "
        "202 when at least one image was stored; 400 when none was.",
        request={"multipart/form-data": InputSerializer},
        responses={
            202: AcceptedSerializer,
            400: OpenApiResponse(
                RejectedSerializer,
                description="No file was stored; `rejected` says why. (A malformed form, e.g. "
                'text where a file is expected, gets the usual `{"files": ["message"]}`.)',
            ),
            404: NOT_FOUND,
        },
    )
    def post(self, request, pk):
        patient = selectors.patient_get(user=request.user, pk=pk)  # out of scope: 404 first
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        files = list(serializer.validated_data.get("files", []))
        if "file" in serializer.validated_data:
            files.append(serializer.validated_data["file"])
        report = services.smear_images_upload(
            patient=patient,
            files=files,
            uploaded_by=request.user,
            address=services.request_address(request),
        )
        if not report.stored:
            data = {"detail": "No image was stored.", "rejected": report.rejected}
            return Response(self.RejectedSerializer(data).data, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            self.AcceptedSerializer(report, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


# --- Predictions ------------------------------------------------------------------------------


class ImagePredictionListApi(ServiceErrorsMixin, APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        summary="An image's prediction history",
        tags=["predictions"],
        description="Every classification of the image, one per model version, newest first.",
        responses={200: PredictionOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        predictions = selectors.prediction_list(user=request.user, image=image)
        return paginated_response(
            view=self,
            serializer_class=PredictionOutputSerializer,
            queryset=predictions,
            request=request,
            audit_event=EventType.PREDICTION_LIST_VIEWED,
            image=image,
        )


class PredictionListApi(ServiceErrorsMixin, APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    class FilterSerializer(serializers.Serializer):
        label = serializers.CharField(
            required=False, allow_blank=True, max_length=32, help_text="e.g. Pro (any case)."
        )
        agreement = serializers.ChoiceField(
            choices=Prediction.Agreement.choices, required=False, allow_blank=True
        )
        model_version = serializers.IntegerField(
            required=False, min_value=1, help_text="Model version number: 3 for v3."
        )

        class Meta:
            ref_name = "PredictionFilter"

    @extend_schema(
        summary="Your prediction history",
        tags=["predictions"],
        description="Predictions on your patients' images (administrators: all), newest first.",
        parameters=[FilterSerializer],
        responses={200: PredictionOutputSerializer(many=True), 400: VALIDATION_ERROR},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        predictions = selectors.prediction_list(user=request.user, **filters.validated_data)
        return paginated_response(
            view=self,
            serializer_class=PredictionOutputSerializer,
            queryset=predictions,
            request=request,
            audit_event=EventType.PREDICTION_LIST_VIEWED,
        )


class PredictionDetailApi(ServiceErrorsMixin, APIView):
    @extend_schema(
        summary="Show a prediction",
        tags=["predictions"],
        description="One classification with its uncertainty: votes out of member_count, "
        "agreement, per-class probabilities and each member's vote.",
        responses={200: PredictionOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        prediction = selectors.prediction_get(user=request.user, pk=pk)
        services.audit_read(
            request=request,
            event_type=EventType.PREDICTION_VIEWED,
            image=prediction.image,
            extra={"prediction": prediction.pk},
        )
        return Response(PredictionOutputSerializer(prediction, context={"request": request}).data)
