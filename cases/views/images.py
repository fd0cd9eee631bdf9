"""Image pages: the result page and its status poll, the stored file and thumbnail, and the
"try again" / "classify again" actions (lifecycle services that say what they did)."""

import math

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.files.storage import default_storage
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.functional import cached_property
from django.views import View

from .. import selectors, services
from ..flags import badges as flag_badges
from ..models import CONTENT_TYPES, FORMAT_EXTENSIONS, AuditEvent, SmearImage, Verdict
from ..presentation import PredictionView, vote_summary
from ..roles import Capability, can

EventType = AuditEvent.EventType
BROWSER_FORMATS = {"JPEG", "PNG"}  # shown as they are; other formats through the thumbnail


def _active_version():
    """The active model version, or ``None`` when no version is active."""
    from inference.artifacts import get_active_version

    return get_active_version()


class ScopedImageMixin:
    @cached_property
    def image(self) -> SmearImage:
        return selectors.image_get(user=self.request.user, pk=self.kwargs["pk"])


class ImageDetailView(LoginRequiredMixin, ScopedImageMixin, View):
    def get(self, request, pk):
        image = self.image
        context = {
            "image": image,
            "patient": image.patient,
            "display_url": image_display_url(image),
            **image_result_context(request, image),
            **review_context(request, image),
        }
        prediction = context["prediction"]
        services.audit_read(
            request=request,
            event_type=EventType.IMAGE_VIEWED,
            image=image,
            extra={"prediction": prediction.pk if prediction else None},
        )
        return render(request, "cases/image_detail.html", context)


def review_context(request, image: SmearImage) -> dict:
    """The verdict panel's context: flags, the current verdict and its history, the form. The
    form confirms or reclassifies only the result a verdict may judge (``verdict_prediction``):
    not an earlier result while the image is classified again, or after that failed."""
    locked = image.specimen.is_signed
    return {
        "verdict_prediction": services.verdict_prediction(image),
        "flags": flag_badges(image.current_flags),
        "current_verdict": image.current_verdict,
        "verdict_history": image.verdict_history,
        "locked": locked,
        "can_verify": not locked and can(request.user, image.patient.lab_id, Capability.VERIFY),
        "na_reasons": Verdict.NotAssessableReason.choices,
    }


class ImageStatusView(LoginRequiredMixin, ScopedImageMixin, View):
    """Polled by ``static/js/status.js`` until the image is finished."""

    passive = True  # a poll, not the person: it does not keep the session alive

    def get(self, request, pk):
        image = self.image
        context = image_result_context(request, image)
        prediction = context["prediction"]
        if image.is_finished:  # the answer carries the result: a read (the poll then stops)
            services.audit_read(
                request=request,
                event_type=EventType.IMAGE_VIEWED,
                image=image,
                extra={"prediction": prediction.pk if prediction else None, "via": "status"},
            )
        response = JsonResponse(
            {
                "id": image.pk,
                "status": image.status,
                "status_label": image.get_status_display(),
                "error_message": image.error_message,
                "finished": image.is_finished,
                "waiting_for_model": context["waiting_for_model"],
                "label": prediction.shown_label if prediction else None,
                "prediction_id": prediction.pk if prediction else None,
                "maps_pending": bool(
                    prediction and prediction.saliency_status == prediction.Saliency.PENDING
                ),
                "summary": vote_summary(prediction),
                "state": context["state"],
                "badge_html": render_to_string(
                    "cases/_status_badge.html", {"image": image}, request=request
                ),
                "summary_html": render_to_string(
                    "cases/_image_summary.html",
                    {"image": image, "prediction": prediction},
                    request=request,
                ),
                "result_html": render_to_string(
                    "cases/_image_result.html", context, request=request
                ),
            }
        )
        return response


class ImageFileView(LoginRequiredMixin, ScopedImageMixin, View):
    """The stored pixels, streamed from the default storage (local disk or S3).

    Served under a name made from the content type (``image-12.png``), never the uploaded name.
    """

    def get(self, request, pk):
        image = self.image
        not_modified = get_conditional_response(request, etag=_etag(image))
        if not_modified is not None:
            return _harden(not_modified)
        services.audit_read(request=request, event_type=EventType.IMAGE_FILE_READ, image=image)
        response = FileResponse(
            default_storage.open(image.file.name, "rb"),
            content_type=CONTENT_TYPES.get(image.format, "application/octet-stream"),
            filename=f"image-{image.pk}.{FORMAT_EXTENSIONS.get(image.format, 'bin')}",
        )
        response["ETag"] = _etag(image)
        return _harden(response)


class ImageThumbnailView(LoginRequiredMixin, ScopedImageMixin, View):
    """The stored small JPEG of the image (made once, at upload or on the first request)."""

    def get(self, request, pk):
        image = self.image
        etag = _etag(image, "t320")
        not_modified = get_conditional_response(request, etag=etag)
        if not_modified is not None:
            return _harden(not_modified)
        name = services.image_thumbnail_ensure(image=image)
        services.audit_read(
            request=request,
            event_type=EventType.IMAGE_FILE_READ,
            image=image,
            extra={"variant": "thumbnail"},
        )
        response = FileResponse(
            default_storage.open(name, "rb"),
            content_type="image/jpeg",
            filename=f"image-{image.pk}-thumbnail.jpg",
        )
        response["ETag"] = etag
        return _harden(response)


class SaliencyMapView(LoginRequiredMixin, ScopedImageMixin, View):
    """A stored Grad-CAM overlay PNG of one of the image's predictions."""

    def get(self, request, pk, map_pk):
        image = self.image
        row = selectors.saliency_map_get(image=image, map_pk=map_pk)
        etag = _etag(image, f"saliency{row.pk}")
        not_modified = get_conditional_response(request, etag=etag)
        if not_modified is not None:
            return _harden(not_modified)
        services.audit_read(
            request=request,
            event_type=EventType.IMAGE_FILE_READ,
            image=image,
            extra={"variant": "saliency", "member": row.member or "ensemble"},
        )
        response = FileResponse(
            default_storage.open(row.file.name, "rb"),
            content_type="image/png",
            filename=f"image-{image.pk}-gradcam-{row.member or 'ensemble'}.png",
        )
        response["ETag"] = etag
        return _harden(response)


class ImageActionView(LoginRequiredMixin, ScopedImageMixin, View):
    """POST runs the lifecycle service ``action`` and says what happened; GET leads back."""

    action = None

    def get(self, request, pk):
        return redirect("cases:image-detail", pk=self.image.pk)

    def post(self, request, pk):
        image = self.image
        try:
            result = type(self).action(
                image_id=image.pk, user=request.user, address=services.request_address(request)
            )
        except services.ActionRefused as exc:
            messages.info(request, str(exc))
        else:
            say = messages.success if result.sent else messages.warning
            say(request, result.message)
        return redirect("cases:image-detail", pk=image.pk)


class ImageRequeueView(ImageActionView):
    """“Try again” for a failed or stuck image."""

    action = services.image_retry


class ImageReclassifyView(ImageActionView):
    """Classify a finished image again with the model version that is active now."""

    action = services.image_reclassify


def image_display_url(image: SmearImage) -> str:
    if image.format in BROWSER_FORMATS:
        return reverse("cases:image-file", args=[image.pk])
    return reverse("cases:image-thumbnail", args=[image.pk])


def image_result_context(request, image: SmearImage) -> dict:
    """Everything ``cases/_image_result.html`` shows: the state, the result and the history."""
    history = list(selectors.prediction_list(user=request.user, image=image))
    prediction = history[0] if history else None
    active = _active_version()
    waiting_for_model = image.status == SmearImage.Status.QUEUED and active is None
    # A signed specimen keeps its images as signed; only some roles may send images again.
    may_requeue = not image.specimen.is_signed and can(
        request.user, image.patient.lab_id, Capability.REQUEUE
    )
    can_reclassify = may_requeue and services.reclassify_refusal(image, active) is None
    can_retry = may_requeue and not waiting_for_model and services.retry_refusal(image) is None
    state = "|".join(
        [
            image.status,
            "retry" if can_retry else "",
            "waiting" if waiting_for_model else "",
            str(prediction.pk if prediction else ""),
            str(len(history)),
            image.error_message,
            str(active.pk if active else ""),
            prediction.saliency_status if prediction else "",
        ]
    )
    return {
        "image": image,
        "prediction": prediction,
        "result": PredictionView.of(prediction) if prediction else None,
        "history": history,
        "active_version": active,
        "waiting_for_model": waiting_for_model,
        "can_retry": can_retry,
        "recovery_minutes": math.ceil(services.recovered_within(image).total_seconds() / 60),
        "can_reclassify": can_reclassify,
        "saliency": selectors.saliency_maps(prediction) if prediction else None,
        "state": state,
    }


def _etag(image: SmearImage, variant: str = "") -> str:
    return f'"{image.sha256}{"-" + variant if variant else ""}"'


def _harden(response):
    """Headers for smear image bytes: never sniffed, never a page (``NoStoreMiddleware`` adds
    ``Cache-Control: no-store``)."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
