"""What the admin classes share: read-only access, audited reads, JSON shown readably."""

import json

from django.utils.html import format_html

from . import services


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class ReadOnlyAdminMixin:
    """View permission only: no add, no change, no delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedReadsMixin:
    """Staff reads of patient data are audited like everyone's: the list, and each record."""

    list_event = None
    detail_event = None

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            services.audit_read(request=request, event_type=self.list_event)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id) if request.method == "GET" else None
        if obj is not None:
            services.audit_read(request=request, event_type=self.detail_event, **self.audited(obj))
        return super().change_view(request, object_id, form_url, extra_context)

    def audited(self, obj) -> dict:
        raise NotImplementedError
