"""Predictions through the API: an image's history, the user's history, one prediction."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import selectors, services
from ..models import AuditEvent, Prediction
from .common import (
    NOT_FOUND,
    VALIDATION_ERROR,
    PredictionOutputSerializer,
    ServiceErrorsMixin,
    paginated_response,
)

EventType = AuditEvent.EventType


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
