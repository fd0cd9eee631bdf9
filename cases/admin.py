"""The admin: the history of what happened, for administrators.

Predictions, member votes and audit events are read-only: history is never rewritten; the audit
log can be filtered and exported as CSV. Smear images are read-only too (uploads go through the
clinician pages or the API); the one write offered is "Try again / classify again", through the
same lifecycle service as the pages and the API (``services.image_requeue``), which says
truthfully what it did and what it refused. Patients, specimens, verdicts and sign-offs are
read-only here: they are registered, verified and signed by the lab's members in the portal,
where the roles apply (``admin_review``). Nothing is deleted from here: a deletion would cascade
into the history.
"""

from django.contrib import admin, messages
from django.db.models import Count
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from inference import admin_display

from . import admin_audit, admin_review, services  # noqa: F401 - they register their admins
from .admin_mixins import AuditedReadsMixin, ReadOnlyAdminMixin
from .models import AuditEvent, MemberVote, Patient, Prediction, SmearImage


def _changelist_link(model, text, **filters) -> str:
    url = reverse(f"admin:cases_{model._meta.model_name}_changelist")
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return format_html('<a href="{}?{}">{}</a>', url, query, text)


# --- Patients ---------------------------------------------------------------------------------


@admin.register(Patient)
class PatientAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_event = AuditEvent.EventType.PATIENT_LIST_VIEWED
    detail_event = AuditEvent.EventType.PATIENT_VIEWED

    def audited(self, patient):
        return {"patient": patient}

    list_display = [
        "record_number",
        "display_label",
        "lab",
        "image_count",
        "sex",
        "birth_year",
        "created_by",
        "created_at",
    ]
    list_display_links = ["record_number", "display_label"]
    list_filter = ["lab", "sex", "created_at"]
    list_select_related = ["lab", "created_by"]
    search_fields = ["record_number", "display_label"]
    fields = [
        "lab",
        "record_number",
        "display_label",
        "sex",
        "birth_year",
        "created_by",
        "created_at",
    ]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(image_count=Count("images", distinct=True))

    @admin.display(description="images", ordering="image_count")
    def image_count(self, patient):
        return _changelist_link(SmearImage, patient.image_count, patient__id__exact=patient.pk)


# --- Smear images -----------------------------------------------------------------------------


def _file_name(name: str):
    """An uploaded file name on one line, cut with an ellipsis by CSS; the full name on hover."""
    return format_html('<span class="lp-truncate" title="{0}">{0}</span>', name)


def _image_label(image_id) -> str:
    """How an image is named in admin titles: never by its file name, which in the public
    dataset carries the true class."""
    return f"Image #{image_id}"


class PredictionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Prediction
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-created_at", "-id"]
    fields = ["label", "votes_of_members", "agreement", "model_version", "created_at"]
    readonly_fields = fields

    @admin.display(description="votes")
    def votes_of_members(self, prediction):
        return f"{prediction.votes}/{prediction.member_count}"


@admin.register(SmearImage)
class SmearImageAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_event = AuditEvent.EventType.IMAGE_LIST_VIEWED
    detail_event = AuditEvent.EventType.IMAGE_VIEWED

    def audited(self, image):
        return {"image": image}

    list_display = [
        "id",
        "file_name",
        "patient",
        "status",
        "uploaded_by",
        "uploaded_at",
        "attempts",
    ]
    list_display_links = ["id", "file_name"]
    list_filter = ["status", "format", "uploaded_at"]
    list_select_related = ["patient", "uploaded_by"]
    search_fields = ["patient__record_number", "=sha256", "original_name"]
    date_hierarchy = "uploaded_at"
    actions = ["requeue"]
    inlines = [PredictionInline]
    fields = [
        "patient",
        "thumbnail_preview",
        "portal_link",
        "original_name",
        "status",
        "error_message",
        "failure_kind",
        "failure_detail",
        "attempts",
        "task_id",
        "enqueued_at",
        "processing_started_at",
        "format",
        "original_format",
        "width",
        "height",
        "size_bytes",
        "sha256",
        "stored_file",
        "uploaded_by",
        "uploaded_at",
        "updated_at",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": (admin_display.ADMIN_STYLESHEET,)}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The title and the breadcrumb (templates/admin/cases/smearimage/change_form.html) name
        # the image by its number, not by str(image), which starts with the uploaded file name.
        extra_context = {"subtitle": _image_label(object_id), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        label = _image_label(object_id)
        extra_context = {"title": f"Change history: {label}", "image_label": label}
        return super().history_view(request, object_id, extra_context)

    @admin.display(description="file name", ordering="original_name")
    def file_name(self, image):
        return _file_name(image.original_name)

    @admin.display(description="thumbnail")
    def thumbnail_preview(self, image):
        # Served by the portal's views (scope check, audited read); media has no public URL.
        try:
            thumbnail = reverse("cases:image-thumbnail", kwargs={"pk": image.pk})
            full = reverse("cases:image-file", kwargs={"pk": image.pk})
        except NoReverseMatch:
            return "—"
        return format_html(
            '<a href="{}"><img src="{}" alt="Thumbnail of {}" class="lp-thumbnail"></a>',
            full,
            thumbnail,
            _image_label(image.pk),
        )

    @admin.display(description="in the portal")
    def portal_link(self, image):
        try:
            url = reverse("cases:image-detail", kwargs={"pk": image.pk})
        except NoReverseMatch:
            return "—"
        return format_html('<a href="{}">Open {} in the portal</a>', url, _image_label(image.pk))

    @admin.display(description="file")
    def stored_file(self, image):
        # Media has no public URL; the clinician pages serve the file after a scope check.
        try:
            url = reverse("cases:image-file", kwargs={"pk": image.pk})
        except NoReverseMatch:
            return image.file.name
        return format_html('<a href="{}">{}</a>', url, image.file.name)

    @admin.action(description="Try again / classify again", permissions=["requeue"])
    def requeue(self, request, queryset):
        queued, refused, unsent = 0, {}, []
        for image in queryset:
            try:
                result = services.image_requeue(
                    image_id=image.pk,
                    user=request.user,
                    address=services.request_address(request),
                )
            except services.ActionRefused as exc:
                refused.setdefault(str(exc), []).append(image.pk)
            else:
                queued += 1
                if not result.sent:
                    unsent.append(image.pk)
        if queued:
            self.message_user(
                request,
                ngettext(
                    "%d image was queued for classification.",
                    "%d images were queued for classification.",
                    queued,
                )
                % queued,
                messages.SUCCESS,
            )
        if unsent:
            self.message_user(
                request,
                f"Images {_first_ids(unsent)}: {services.QUEUE_UNREACHABLE}",
                messages.WARNING,
            )
        for reason, ids in refused.items():
            self.message_user(
                request, f"Left as they were (images {_first_ids(ids)}): {reason}", messages.WARNING
            )

    def has_requeue_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def _first_ids(ids: list[int], shown: int = 20) -> str:
    return ", ".join(str(pk) for pk in ids[:shown]) + (" …" if len(ids) > shown else "")


# --- Predictions (the history) ----------------------------------------------------------------


class MemberVoteInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Each member's vote; all their probabilities are in the prediction's table above."""

    model = MemberVote
    extra = 0
    can_delete = False
    fields = ["member_name", "label", "probability_of_vote"]
    readonly_fields = fields

    @admin.display(description="its probability for the class it voted for")
    def probability_of_vote(self, vote):
        return admin_display.number((vote.probabilities or {}).get(vote.label))


@admin.register(Prediction)
class PredictionAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_event = AuditEvent.EventType.PREDICTION_LIST_VIEWED
    detail_event = AuditEvent.EventType.PREDICTION_VIEWED

    def audited(self, prediction):
        return {"image": prediction.image, "extra": {"prediction": prediction.pk}}

    list_display = [
        "id",
        "image_name",
        "patient_record_number",
        "label",
        "votes_of_members",
        "agreement",
        "out_of_domain",
        "model_version",
        "created_at",
    ]
    list_filter = ["label", "agreement", "out_of_domain", "model_version", "created_at"]
    list_select_related = ["image__patient", "model_version"]
    search_fields = ["image__patient__record_number", "image__original_name"]
    date_hierarchy = "created_at"
    inlines = [MemberVoteInline]
    fields = [
        "image",
        "patient_record_number",
        "label",
        "votes_of_members",
        "agreement",
        "probabilities_table",
        "out_of_domain",
        "ood_score",
        "ood_parts",
        "review",
        "model_version",
        "inference_ms",
        "saliency_status",
        "saliency_error",
        "created_at",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": (admin_display.ADMIN_STYLESHEET,)}

    @admin.display(description="image", ordering="image__original_name")
    def image_name(self, prediction):
        return _file_name(prediction.image.original_name)

    @admin.display(description="patient record number", ordering="image__patient__record_number")
    def patient_record_number(self, prediction):
        return prediction.image.patient.record_number

    @admin.display(description="votes", ordering="votes")
    def votes_of_members(self, prediction):
        return f"{prediction.votes}/{prediction.member_count}"

    @admin.display(description="probabilities")
    def probabilities_table(self, prediction):
        """Classes down, the members' mean and each member across; each member's vote (and the
        voted label) in bold, the last row the votes."""
        votes = list(prediction.member_votes.all())
        mean = prediction.probabilities or {}
        classes = list(prediction.model_version.class_names or sorted(mean))

        def cell(text, strong):
            return format_html('<span class="lp-vote">{}</span>', text) if strong else text

        def probability(values, name, strong):
            return cell(admin_display.number((values or {}).get(name)), strong)

        rows = [
            [
                cell(name, name == prediction.label),
                probability(mean, name, name == prediction.label),
                *(probability(v.probabilities, name, v.label == name) for v in votes),
            ]
            for name in classes
        ]
        rows.append(
            [
                "vote",
                f"{prediction.label} ({prediction.votes}/{prediction.member_count})",
                *(v.label for v in votes),
            ]
        )
        return admin_display.table(
            ["Class", "Mean", *(v.member_name for v in votes)],
            rows,
            caption="Probability per class: the members' mean and each member's",
        )

    @admin.display(description="human review")
    def review(self, prediction):
        version = prediction.model_version
        top = max((prediction.probabilities or {}).values(), default=None)
        if version.review_threshold is None or top is None:
            return f"No review threshold is recorded for model {version.label}."
        threshold = admin_display.number(version.review_threshold, 4)
        if version.needs_review(prediction.probabilities):
            return format_html(
                '<span class="lp-flag">Flagged for review</span>: the top mean probability {} '
                "is below the review threshold {} of model {}.",
                admin_display.number(top, 4),
                threshold,
                version.label,
            )
        return format_html(
            "Not flagged: the top mean probability {} reaches the review threshold {} of model {}.",
            admin_display.number(top, 4),
            threshold,
            version.label,
        )
