"""Patient pages: the list, registration, correction, and the patient page with its specimens."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import FormView, ListView

from .. import selectors, services
from ..forms import PatientForm, SpecimenForm
from ..models import AuditEvent, Prediction, SmearImage
from ..roles import Capability, RoleRequired, can, require
from .common import refuse

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
    http_method_names = ["get", "post"]  # FormView's PUT would be a second POST

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not self.labs:
            raise RoleRequired(Capability.REGISTER, None)
        return super().dispatch(request, *args, **kwargs)

    @cached_property
    def labs(self):
        return list(selectors.lab_list(user=self.request.user, capability=Capability.REGISTER))

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "labs": self.labs}

    def form_valid(self, form):
        data = dict(form.cleaned_data)
        lab = data.pop("lab")
        try:
            patient = services.patient_create(
                lab=lab,
                created_by=self.request.user,
                address=services.request_address(self.request),
                **data,
            )
        except RoleRequired as exc:
            return refuse(self.request, str(exc))
        except ValidationError as exc:
            form.add_service_error(exc)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"Patient “{patient.display_label}” registered. Register a specimen to upload its "
            "smear images.",
        )
        return redirect("cases:patient-detail", pk=patient.pk)


class ScopedPatientMixin:
    @cached_property
    def patient(self):
        return selectors.patient_get(user=self.request.user, pk=self.kwargs["pk"])


class PatientEditView(LoginRequiredMixin, ScopedPatientMixin, FormView):
    template_name = "cases/patient_form.html"
    form_class = PatientForm
    http_method_names = ["get", "post"]

    def get(self, request, *args, **kwargs):
        services.audit_read(
            request=request, event_type=EventType.PATIENT_VIEWED, patient=self.patient
        )
        return super().get(request, *args, **kwargs)

    def get_initial(self):
        return {name: getattr(self.patient, name) for name in services.PATIENT_FIELDS}

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not can(
            request.user, self.patient.lab_id, Capability.REGISTER
        ):
            return refuse(request, "Only a technologist or hematologist of the lab may edit it.")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(patient=self.patient, **kwargs)

    def form_valid(self, form):
        patient = self.patient
        if not form.has_changed():
            messages.info(self.request, "Nothing was changed.")
            return redirect("cases:patient-detail", pk=patient.pk)
        try:
            services.patient_update(
                patient=patient,
                user=self.request.user,
                data=form.cleaned_data,
                address=services.request_address(self.request),
            )
        except ValidationError as exc:
            patient.refresh_from_db()  # the service set the rejected values on the instance
            form.add_service_error(exc)
            return self.form_invalid(form)
        messages.success(self.request, "Patient details saved.")
        return redirect("cases:patient-detail", pk=patient.pk)


class PatientDetailView(LoginRequiredMixin, ScopedPatientMixin, View):
    """The patient's details and specimens. POST registers a specimen."""

    template_name = "cases/patient_detail.html"

    def get(self, request, pk):
        services.audit_read(
            request=request, event_type=EventType.PATIENT_VIEWED, patient=self.patient
        )
        return self.render_page(SpecimenForm())

    def post(self, request, pk):
        require(request.user, self.patient.lab_id, Capability.REGISTER)
        form = SpecimenForm(request.POST)
        if form.is_valid():
            try:
                specimen = services.specimen_create(
                    patient=self.patient,
                    created_by=request.user,
                    address=services.request_address(request),
                    **form.cleaned_data,
                )
            except RoleRequired as exc:
                return refuse(request, str(exc))
            except ValidationError as exc:
                form.add_service_error(exc)
            else:
                messages.success(
                    request,
                    f"Specimen {specimen.accession_number} registered. Upload its smear images.",
                )
                return redirect("cases:specimen-detail", pk=specimen.pk)
        return self.render_page(form)

    def render_page(self, form, status=200):
        specimens = selectors.specimen_list(user=self.request.user, patient=self.patient)
        return render(
            self.request,
            self.template_name,
            {
                "patient": self.patient,
                "form": form,
                "specimens": specimens,
                "can_register": can(self.request.user, self.patient.lab_id, Capability.REGISTER),
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
