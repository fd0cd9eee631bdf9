"""The admin's read-only view of the review workflow: labs and members, specimens, verdicts,
flags and sign-offs. Every change happens in the portal, where the roles apply; here an
administrator filters and reads (reads of patient data are audited)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .admin_mixins import AuditedReadsMixin, ReadOnlyAdminMixin
from .models import (
    AuditEvent,
    CaseReport,
    ImageFlag,
    Lab,
    Membership,
    SignOff,
    Specimen,
    Verdict,
)


class MembershipInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = fields


@admin.register(Lab)
class LabAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "members", "created_at", "portal_pages"]
    search_fields = ["name"]
    inlines = [MembershipInline]

    @admin.display(description="members")
    def members(self, lab):
        return lab.memberships.count()

    @admin.display(description="in the portal")
    def portal_pages(self, lab):
        return format_html(
            '<a href="{}">members</a> · <a href="{}">QA</a>',
            reverse("cases:lab-members", args=[lab.pk]),
            reverse("cases:lab-qa", args=[lab.pk]),
        )


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "lab", "role", "created_at"]
    list_filter = ["lab", "role"]
    search_fields = ["user__username", "lab__name"]


class SignOffInline(ReadOnlyAdminMixin, admin.StackedInline):
    model = SignOff
    extra = 0
    fields = ["version", "interpretation", "comment", "amendment_reason", "signed_by", "signed_at"]
    readonly_fields = fields
    ordering = ["-version"]


@admin.register(Specimen)
class SpecimenAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_event = AuditEvent.EventType.SPECIMEN_LIST_VIEWED
    detail_event = AuditEvent.EventType.SPECIMEN_VIEWED
    list_display = [
        "accession_number",
        "patient",
        "lab",
        "specimen_type",
        "collection_date",
        "status",
        "created_at",
    ]
    list_filter = ["lab", "status", "specimen_type", "created_at"]
    list_select_related = ["patient", "lab"]
    search_fields = ["accession_number", "patient__record_number"]
    date_hierarchy = "created_at"
    readonly_fields = ["portal_page"]
    inlines = [SignOffInline]

    def audited(self, specimen):
        return {"specimen": specimen}

    @admin.display(description="in the portal")
    def portal_page(self, specimen):
        url = reverse("cases:specimen-detail", args=[specimen.pk])
        return format_html('<a href="{}">Open the specimen page</a>', url)


@admin.register(Verdict)
class VerdictAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_event = AuditEvent.EventType.IMAGE_LIST_VIEWED
    detail_event = AuditEvent.EventType.IMAGE_VIEWED
    list_display = [
        "created_at",
        "image_link",
        "kind",
        "label",
        "model_label",
        "reviewer",
        "reviewer_role",
    ]
    list_filter = ["kind", "label", "reviewer_role", "image__patient__lab", "created_at"]
    list_select_related = ["image", "prediction", "reviewer"]
    search_fields = ["image__specimen__accession_number", "reviewer__username", "reason"]
    date_hierarchy = "created_at"

    def audited(self, verdict):
        return {"image": verdict.image}

    @admin.display(description="image")
    def image_link(self, verdict):
        url = reverse("admin:cases_smearimage_change", args=[verdict.image_id])
        return format_html('<a href="{}">Image #{}</a>', url, verdict.image_id)

    @admin.display(description="model label")
    def model_label(self, verdict):
        return verdict.prediction.label if verdict.prediction else "—"


@admin.register(ImageFlag)
class ImageFlagAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "image", "reason", "detail", "active"]
    list_filter = ["reason", "active", "created_at"]
    list_select_related = ["image"]


@admin.register(SignOff)
class SignOffAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Interpretations, comments and amendment reasons of every lab: read like a specimen's.
    list_event = AuditEvent.EventType.SPECIMEN_LIST_VIEWED
    detail_event = AuditEvent.EventType.SPECIMEN_VIEWED
    list_display = ["specimen", "version", "interpretation", "signed_by", "signed_at"]
    list_filter = ["interpretation", "specimen__lab", "signed_at"]
    list_select_related = ["specimen", "signed_by"]
    search_fields = ["specimen__accession_number", "signed_by__username"]
    date_hierarchy = "signed_at"

    def audited(self, sign_off):
        return {"specimen": sign_off.specimen}


@admin.register(CaseReport)
class CaseReportAdmin(AuditedReadsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The stored PDFs: which version, their hash and size, how long they took to render. The
    file itself is downloaded from the specimen page by the lab's members (audited)."""

    list_display = ["sign_off", "pages", "size", "render_seconds", "sha256", "created_at"]
    list_filter = ["sign_off__specimen__lab", "created_at"]
    list_select_related = ["sign_off__specimen"]
    search_fields = ["sign_off__specimen__accession_number", "sha256"]
    date_hierarchy = "created_at"
    exclude = ["file"]
    list_event = AuditEvent.EventType.SPECIMEN_LIST_VIEWED
    detail_event = AuditEvent.EventType.SPECIMEN_VIEWED

    def audited(self, report):
        return {"specimen": report.sign_off.specimen}
