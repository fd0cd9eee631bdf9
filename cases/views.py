"""Clinician pages. Thin: read through ``selectors`` (scoped to the user), write through
``services``, and turn results into something a page can show.

Every view requires a login. Every object is fetched through a selector that answers 404 when it
lies outside the user's scope, so another clinician's patients and images do not exist here.
"""

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import FormView, ListView

from leukemia_portal.errors import request_refused_message

from . import selectors, services
from .forms import PatientForm, SmearUploadForm, duplicate_record_message
from .models import CONTENT_TYPES, FORMAT_EXTENSIONS, AuditEvent, Prediction, SmearImage

EventType = AuditEvent.EventType

logger = logging.getLogger(__name__)

# What each class label means, shown next to the short label on result pages.
CLASS_NAMES = {
    "Benign": "Hematogones (benign)",
    "Early": "Early pre-B ALL",
    "Pre": "Pre-B ALL",
    "Pro": "Pro-B ALL",
}
CLASS_NOTES = {  # next to the short label where space is tight
    "Benign": "hematogones",
    "Early": "early pre-B ALL",
    "Pre": "pre-B ALL",
    "Pro": "pro-B ALL",
}
CLASS_DESCRIPTIONS = {
    "Benign": "Hematogones: benign B-lymphocyte precursors, not leukemia.",
    "Early": "Early precursor B-cell acute lymphoblastic leukemia (early pre-B ALL).",
    "Pre": "Precursor B-cell acute lymphoblastic leukemia (pre-B ALL).",
    "Pro": "Pro-B-cell acute lymphoblastic leukemia (pro-B ALL).",
}
BROWSER_FORMATS = {"JPEG", "PNG"}  # shown as they are; other formats through the thumbnail


def _active_version():
    """The active model version, or ``None`` when no version is active."""
    from inference.registry import get_active_version

    return get_active_version()


# --- Patients ---------------------------------------------------------------------------------


class PatientListView(LoginRequiredMixin, ListView):
    template_name = "cases/patient_list.html"
    context_object_name = "patients"
    paginate_by = 20

    def get_queryset(self):
        return selectors.patient_list(user=self.request.user, search=self.search)

    @cached_property
    def search(self) -> str:
        return self.request.GET.get("q", "").strip()[:100]

    def get_context_data(self, **kwargs):
        search_query = urlencode({"q": self.search}) if self.search else ""
        context = super().get_context_data(q=self.search, search_query=search_query, **kwargs)
        services.audit_read(
            request=self.request,
            event_type=EventType.PATIENT_LIST_VIEWED,
            extra={"patients": [p.pk for p in context["patients"]], "search": self.search},
        )
        return context


class PatientCreateView(LoginRequiredMixin, FormView):
    template_name = "cases/patient_form.html"
    form_class = PatientForm

    def form_valid(self, form):
        try:
            patient = services.patient_create(owner=self.request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_error(exc)
            return self.form_invalid(form)
        except IntegrityError:  # a concurrent request registered the same number first
            form.add_error("record_number", duplicate_record_message(form["record_number"].value()))
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"Patient “{patient.display_label}” registered. Upload smear images below.",
        )
        return redirect("cases:patient-detail", pk=patient.pk)


class ScopedPatientMixin:
    @cached_property
    def patient(self):
        return selectors.patient_get(user=self.request.user, pk=self.kwargs["pk"])


class PatientEditView(LoginRequiredMixin, ScopedPatientMixin, FormView):
    template_name = "cases/patient_form.html"
    form_class = PatientForm

    def get(self, request, *args, **kwargs):
        services.audit_read(
            request=request, event_type=EventType.PATIENT_VIEWED, patient=self.patient
        )
        return super().get(request, *args, **kwargs)

    def get_initial(self):
        return {name: getattr(self.patient, name) for name in services.PATIENT_FIELDS}

    def get_context_data(self, **kwargs):
        return super().get_context_data(patient=self.patient, **kwargs)

    def form_valid(self, form):
        patient = self.patient
        if not form.has_changed():
            messages.info(self.request, "Nothing was changed.")
            return redirect("cases:patient-detail", pk=patient.pk)
        try:
            services.patient_update(patient=patient, user=self.request.user, data=form.cleaned_data)
        except ValidationError as exc:
            patient.refresh_from_db()  # the service set the rejected values on the instance
            form.add_service_error(exc)
            return self.form_invalid(form)
        except IntegrityError:
            patient.refresh_from_db()
            form.add_error("record_number", duplicate_record_message(form["record_number"].value()))
            return self.form_invalid(form)
        messages.success(self.request, "Patient details saved.")
        return redirect("cases:patient-detail", pk=patient.pk)


class PatientDetailView(LoginRequiredMixin, ScopedPatientMixin, View):
    """The patient's details, the upload form and the image history. POST uploads images."""

    template_name = "cases/patient_detail.html"
    images_per_page = 25

    def get(self, request, pk):
        services.audit_read(
            request=request, event_type=EventType.PATIENT_VIEWED, patient=self.patient
        )
        return self.render_page(SmearUploadForm())

    def post(self, request, pk):
        patient = self.patient
        try:
            form = SmearUploadForm(request.POST, request.FILES)
        except SuspiciousOperation as exc:  # too many files, too large a request
            messages.error(request, f"Nothing was stored. {request_refused_message(exc)[1]}")
            return self.render_page(SmearUploadForm(), status=400)
        report = None
        if form.is_valid():
            report = services.smear_images_upload(
                patient=patient,
                files=form.cleaned_data["images"],
                uploaded_by=request.user,
                address=services.request_address(request),
            )
            for message in report.rejected:
                form.add_error("images", message)
            if not report.rejected:
                stored = report.stored
                if len(stored) == 1:
                    messages.success(
                        request,
                        f"“{stored[0].original_name}” was stored and queued for classification.",
                    )
                    return redirect("cases:image-detail", pk=stored[0].pk)
                messages.success(
                    request, f"{len(stored)} images were stored and queued for classification."
                )
                return redirect("cases:patient-detail", pk=patient.pk)
        return self.render_page(form, report=report)

    def render_page(self, form, report=None, status=200):
        images = selectors.image_list(user=self.request.user, patient=self.patient)
        page = Paginator(images, self.images_per_page).get_page(self.request.GET.get("page"))
        rows = [ImageRow.of(image) for image in page.object_list]
        return render(
            self.request,
            self.template_name,
            {
                "patient": self.patient,
                "form": form,
                "report": report,
                "page_obj": page,
                "rows": rows,
            },
            status=status,
        )


@dataclass
class ImageRow:
    image: SmearImage
    prediction: Prediction | None

    @classmethod
    def of(cls, image: SmearImage) -> "ImageRow":
        predictions = list(image.predictions.all())  # prefetched newest first by the selector
        return cls(image=image, prediction=predictions[0] if predictions else None)


# --- Images -----------------------------------------------------------------------------------


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
        }
        prediction = context["prediction"]
        services.audit_read(
            request=request,
            event_type=EventType.IMAGE_VIEWED,
            image=image,
            extra={"prediction": prediction.pk if prediction else None},
        )
        return render(request, "cases/image_detail.html", context)


class ImageStatusView(LoginRequiredMixin, ScopedImageMixin, View):
    """Polled by ``static/js/status.js`` until the image is finished."""

    def get(self, request, pk):
        image = self.image
        context = image_result_context(request, image)
        prediction = context["prediction"]
        response = JsonResponse(
            {
                "id": image.pk,
                "status": image.status,
                "status_label": image.get_status_display(),
                "error_message": image.error_message,
                "finished": image.is_finished,
                "waiting_for_model": context["waiting_for_model"],
                "label": prediction.label if prediction else None,
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
        response["Cache-Control"] = "no-store"
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
            messages.success(request, result.message)
        return redirect("cases:image-detail", pk=image.pk)


class ImageRequeueView(ImageActionView):
    """“Try again” for a failed or stuck image."""

    action = services.image_retry


class ImageReclassifyView(ImageActionView):
    """Classify a finished image again with the model version that is active now."""

    action = services.image_reclassify


# --- Presentation helpers ---------------------------------------------------------------------


def vote_summary(prediction: Prediction | None) -> str:
    """``"Pre · 4/5 majority"``, or an empty string without a prediction."""
    if prediction is None:
        return ""
    return (
        f"{prediction.label} · {prediction.votes}/{prediction.member_count} "
        f"{prediction.get_agreement_display().lower()}"
    )


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
    can_reclassify = (
        active is not None
        and image.is_finished
        and prediction is not None
        and prediction.model_version_id != active.pk
    )
    can_retry = not waiting_for_model and services.retry_refusal(image) is None
    state = "|".join(
        [
            image.status,
            "retry" if can_retry else "",
            "waiting" if waiting_for_model else "",
            str(prediction.pk if prediction else ""),
            str(len(history)),
            image.error_message,
            str(active.pk if active else ""),
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
        "can_reclassify": can_reclassify,
        "state": state,
    }


@dataclass
class ClassBar:
    name: str
    note: str  # "pre-B ALL"
    percent: str  # "42.1", formatted here so CSS widths never see a localised decimal
    votes: int
    is_label: bool


@dataclass
class MemberRow:
    name: str
    label: str
    percents: list[tuple[str, bool]]  # per class: ("42.1", is this member's vote)
    agrees: bool


@dataclass
class PredictionView:
    """A prediction made readable: bars, member table, agreement in plain language."""

    prediction: Prediction
    classes: list[str]
    bars: list[ClassBar]
    members: list[MemberRow]

    @classmethod
    def of(cls, prediction: Prediction) -> "PredictionView":
        members = list(prediction.member_votes.all())
        classes = list(prediction.model_version.class_names or prediction.probabilities)
        for name in prediction.probabilities:
            if name not in classes:
                classes.append(name)
        votes = {name: sum(m.label == name for m in members) for name in classes}
        bars = [
            ClassBar(
                name=name,
                note=CLASS_NOTES.get(name, ""),
                percent=_percent(prediction.probabilities.get(name)),
                votes=votes[name],
                is_label=name == prediction.label,
            )
            for name in classes
        ]
        rows = [
            MemberRow(
                name=m.member_name,
                label=m.label,
                percents=[
                    (_percent(m.probabilities.get(name)), name == m.label) for name in classes
                ],
                agrees=m.label == prediction.label,
            )
            for m in members
        ]
        return cls(prediction=prediction, classes=classes, bars=bars, members=rows)

    @property
    def label_name(self) -> str:
        return CLASS_NAMES.get(self.prediction.label, self.prediction.label)

    @property
    def label_description(self) -> str:
        return CLASS_DESCRIPTIONS.get(self.prediction.label, "")

    @property
    def is_uncertain(self) -> bool:
        return self.prediction.agreement == Prediction.Agreement.SPLIT

    @property
    def agreement_headline(self) -> str:
        p = self.prediction
        if p.agreement == Prediction.Agreement.UNANIMOUS:
            return f"All {p.member_count} models agree"
        return f"{p.votes} of {p.member_count} models agree"

    @property
    def agreement_explanation(self) -> str:
        p = self.prediction
        others = p.member_count - p.votes
        if p.agreement == Prediction.Agreement.UNANIMOUS:
            return (
                f"Every one of the {p.member_count} networks in the ensemble voted {p.label}. "
                "Agreement between models is not proof of correctness: the models can share "
                "the same blind spots."
            )
        if p.agreement == Prediction.Agreement.MAJORITY:
            return (
                f"{p.votes} of the {p.member_count} networks voted {p.label}; "
                f"{others} voted for {'another class' if others == 1 else 'other classes'}. "
                "A majority decided the label; look at the dissenting votes below."
            )
        return (
            f"No class won more than half of the votes: only {p.votes} of {p.member_count} "
            f"networks voted {p.label}, and ties were broken by the mean probability. "
            "The models disagree, so this result is uncertain: review the smear manually."
        )


def _percent(value) -> str:
    try:
        return f"{float(value) * 100:.1f}"
    except (TypeError, ValueError):
        return "0.0"


def _etag(image: SmearImage, variant: str = "") -> str:
    return f'"{image.sha256}{"-" + variant if variant else ""}"'


def _harden(response):
    """Headers for smear image bytes: never sniffed, never a page (``NoStoreMiddleware`` adds
    ``Cache-Control: no-store``)."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
