"""The audit log in the admin: filter, search and export as CSV; never add, change or delete."""

import csv
import json

from django.contrib import admin
from django.http import StreamingHttpResponse

from . import services
from .admin_mixins import ReadOnlyAdminMixin, pretty_json
from .models import AuditEvent

# --- Audit log --------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: filter, search, export; never add, change or delete."""

    list_display = [
        "event_time",
        "event_type",
        "acting_user",
        "ip_address",
        "patient",
        "image",
        "old",
        "new",
    ]
    list_filter = ["event_type", "event_time", ("acting_user", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["acting_user", "patient", "image"]
    search_fields = ["acting_user__username", "patient__record_number", "=ip_address"]
    date_hierarchy = "event_time"
    actions = ["export_csv"]
    fields = [*list_display, "extra"]
    readonly_fields = fields

    @admin.display(description="old values")
    def old(self, event):
        return pretty_json(event.extra_data.get("old")) if "old" in event.extra_data else "—"

    @admin.display(description="new values")
    def new(self, event):
        return pretty_json(event.extra_data.get("new")) if "new" in event.extra_data else "—"

    @admin.display(description="other details")
    def extra(self, event):
        other = {k: v for k, v in event.extra_data.items() if k not in ("old", "new")}
        return pretty_json(other) if other else "—"

    @admin.action(description="Export the selected events as CSV")
    def export_csv(self, request, queryset):
        # The events carry record numbers and interpretations: taking them out is audited.
        services.audit_read(
            request=request,
            event_type=AuditEvent.EventType.CSV_EXPORTED,
            extra={"what": "audit log", "audit_events": queryset.count()},
        )
        rows = queryset.select_related("acting_user", "patient").order_by("event_time", "id")
        response = StreamingHttpResponse(
            _csv_lines(_audit_rows(rows.iterator(chunk_size=2000))),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
        return response

    def get_actions(self, request):
        # Viewing the log is enough to export it; nothing in it can be changed or deleted.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


AUDIT_CSV_HEADER = [
    "time",
    "event",
    "user",
    "address",
    "patient_record_number",
    "image_id",
    "details",
]


def _audit_rows(events):
    yield AUDIT_CSV_HEADER
    for event in events:
        yield [
            event.event_time.isoformat(),
            event.get_event_type_display(),
            event.acting_user.get_username() if event.acting_user else "",
            event.ip_address or "",
            event.patient.record_number if event.patient else "",
            event.image_id or "",
            json.dumps(event.extra_data, ensure_ascii=False, sort_keys=True),
        ]


class _Echo:
    def write(self, value):
        return value


def _csv_lines(rows):
    """CSV text, one line at a time; a cell that a spreadsheet would run as a formula is quoted
    with a leading apostrophe (OWASP's CSV-injection advice)."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([_neutralise(cell) for cell in row])


def _neutralise(cell):
    text = str(cell)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
