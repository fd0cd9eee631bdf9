"""Patient pages: the list, registration, correction, and the patient page with its uploads."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import FormView, ListView

from leukemia_portal.errors import request_refused_message

from .. import selectors, services
from ..forms import PatientForm, SmearUploadForm, duplicate_record_message
from ..models import AuditEvent, Prediction, SmearImage

EventType = AuditEvent.EventType


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
