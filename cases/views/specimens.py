"""The specimen (case) page: its images with model labels, flags and verdicts, the case summary,
the upload form, and sign-off with its amendments. Also the verdict form of the image page."""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.functional import cached_property
from django.views import View

from .. import selectors, services
from ..flags import badges as flag_badges
from ..forms import SignOffForm, SmearUploadForm, VerdictForm
from ..models import AuditEvent, SignOff, Verdict
from ..roles import Capability, RoleRequired, can, require
from ..selectors.review import sign_off_history, specimen_sign_state, specimen_summary
from .common import refuse
from .patients import ImageRow

EventType = AuditEvent.EventType


class ScopedSpecimenMixin:
    @cached_property
    def specimen(self):
        return selectors.specimen_get(user=self.request.user, pk=self.kwargs["pk"])


class SpecimenDetailView(LoginRequiredMixin, ScopedSpecimenMixin, View):
    """GET: the case page. POST: upload images into the specimen."""

    template_name = "cases/specimen_detail.html"

    def get(self, request, pk):
        services.audit_read(
            request=request, event_type=EventType.SPECIMEN_VIEWED, specimen=self.specimen
        )
        return self.render_page(SmearUploadForm())

    def post(self, request, pk):
        require(request.user, self.specimen.lab_id, Capability.REGISTER)
        # Too many files or too large a request: refused while the CSRF check reads the form,
        # before this view (leukemia_portal.errors.bad_request says what to do).
        form = SmearUploadForm(request.POST, request.FILES)
        report = None
        if form.is_valid():
            try:
                report = services.smear_images_upload(
                    specimen=self.specimen,
                    files=form.cleaned_data["images"],
                    uploaded_by=request.user,
                    address=services.request_address(request),
                )
            except RoleRequired as exc:
                return refuse(request, str(exc))
            for message in report.rejected:
                form.add_error("images", message)
            if not report.rejected:
                n = len(report.stored)
                messages.success(
                    request,
                    f"{n} image{'s' if n != 1 else ''} stored and queued for classification.",
                )
                return redirect("cases:specimen-detail", pk=self.specimen.pk)
        return self.render_page(form, report=report)

    def render_page(self, form, report=None, status=200, sign_form=None):
        specimen, user = self.specimen, self.request.user
        # The state the form carries is read before what the page shows: a verdict recorded
        # in between makes the signature refused, never signed unseen.
        sign_form = sign_form or _sign_form(specimen)
        images = list(selectors.image_list(user=user, specimen=specimen))
        signed = specimen.is_signed
        summary = specimen_summary(images=images)
        sign_offs = list(sign_off_history(specimen=specimen))
        classes = [c for c in SignOff.Interpretation.values if c != "inconclusive"]
        context = {
            "specimen": specimen,
            "summary_rows": [
                (c, summary["model_labels"].get(c, 0), summary["verified_labels"].get(c, 0))
                for c in classes
            ],
            "patient": specimen.patient,
            "form": form,
            "report": report,
            "rows": [SpecimenImageRow.of(image) for image in images],
            "summary": summary,
            "sign_offs": sign_offs,
            "current_report": getattr(sign_offs[0], "report", None) if sign_offs else None,
            "can_report": can(user, specimen.lab_id, Capability.REPORT),
            "can_register": not signed and can(user, specimen.lab_id, Capability.REGISTER),
            "can_sign": can(user, specimen.lab_id, Capability.SIGN),
            "sign_form": sign_form,
        }
        return render(self.request, self.template_name, context, status=status)


def _sign_form(specimen, data=None) -> SignOffForm:
    """The sign-off form over the case as it is now (its hidden ``seen_*`` fields). An amendment
    starts from the current interpretation, a first sign-off from nothing; shown again after a
    refusal, it keeps what was typed (``data``) with the current state, so that signing again
    covers what the page now shows."""
    state = specimen_sign_state(specimen=specimen)
    if data is not None:
        data = data.copy()
        for name, value in state.items():
            data[name] = str(value)
        form = SignOffForm(data, amending=specimen.is_signed)
        form.is_valid()  # its errors, if any, are shown
        return form
    current = specimen.sign_offs.order_by("-version").first()
    initial = {"interpretation": current.interpretation} if current else {}
    return SignOffForm(amending=specimen.is_signed, initial={**initial, **state})


class SpecimenImageRow(ImageRow):
    @classmethod
    def of(cls, image):
        row = super().of(image)
        row.verdict = image.current_verdict
        row.flags = flag_badges(image.current_flags)
        return row


class SpecimenSignView(LoginRequiredMixin, ScopedSpecimenMixin, View):
    """POST: sign the specimen out, or amend its sign-off (with a reason)."""

    def post(self, request, pk):
        specimen = self.specimen
        try:
            services.require_signer(
                specimen=specimen,
                user=request.user,
                amending=specimen.is_signed,
                address=services.request_address(request),
            )
        except services.SignOffRefused as exc:
            return refuse(request, str(exc))
        form = SignOffForm(request.POST, amending=specimen.is_signed)
        page = SpecimenDetailView(request=request, kwargs=self.kwargs)
        if not form.is_valid():  # shown again as posted: the state the signer read stays
            messages.error(request, "Nothing was signed: see the sign-off form.")
            return page.render_page(SmearUploadForm(), status=400, sign_form=form)
        data = form.cleaned_data
        action = services.specimen_amend if specimen.is_signed else services.specimen_sign_out
        extra = {"reason": data["reason"]} if specimen.is_signed else {}
        try:
            sign_off = action(
                specimen=specimen,
                user=request.user,
                interpretation=data["interpretation"],
                comment=data["comment"],
                seen_verdict=data["seen_verdict"],
                seen_version=data["seen_version"],
                address=services.request_address(request),
                **extra,
            )
        except services.SignOffRefused as exc:
            if exc.forbidden:
                return refuse(request, str(exc))
            messages.error(request, str(exc))
            was_signed = specimen.is_signed
            specimen.refresh_from_db()  # e.g. signed by someone else meanwhile
            # The case as it is now; what was typed stays, unless the form became another
            # (a sign-off became an amendment: it starts afresh).
            typed = request.POST if specimen.is_signed == was_signed else None
            return page.render_page(
                SmearUploadForm(), status=409, sign_form=_sign_form(specimen, typed)
            )
        except services.ReportRenderError as exc:
            messages.error(request, f"Nothing was signed: {exc} Tell an administrator.")
            return page.render_page(SmearUploadForm(), status=500, sign_form=form)
        verb = f"amended (version {sign_off.version})" if sign_off.is_amendment else "signed out"
        messages.success(request, f"Specimen {specimen.accession_number} {verb}.")
        return redirect("cases:specimen-detail", pk=specimen.pk)


class ImageVerdictView(LoginRequiredMixin, View):
    """POST from the image page: record a verdict, then back to the image page."""

    def post(self, request, pk):
        image = selectors.image_get(user=request.user, pk=pk)
        require(request.user, image.patient.lab_id, Capability.VERIFY)
        form = VerdictForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a verdict.")
            return redirect("cases:image-detail", pk=image.pk)
        try:
            verdict = services.verdict_record(
                image=image,
                user=request.user,
                address=services.request_address(request),
                **form.cleaned_data,
            )
        except RoleRequired as exc:
            return refuse(request, str(exc))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("cases:image-detail", pk=image.pk)
        except services.ActionRefused as exc:
            messages.error(request, str(exc))
            return redirect("cases:image-detail", pk=image.pk)
        messages.success(request, f"Verdict recorded: {verdict_text(verdict)}.")
        return redirect("cases:image-detail", pk=image.pk)


def verdict_text(verdict: Verdict) -> str:
    if verdict.kind == Verdict.Kind.CONFIRM:
        return f"confirmed {verdict.label}"
    if verdict.kind == Verdict.Kind.RECLASSIFY:
        return f"reclassified to {verdict.label}"
    if verdict.kind == Verdict.Kind.NOT_ASSESSABLE:
        return f"not assessable ({Verdict.NotAssessableReason(verdict.reason).label.lower()})"
    return "excluded from the case"
