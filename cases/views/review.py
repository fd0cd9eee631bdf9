"""The review queue page and the lab pages (QA, members).

The queue page is a shell: ``static/js/review.js`` loads the queue from the API
(``api:review-queue``) and records verdicts through it (``api:image-verdicts``), so a reviewer
works from the keyboard without a page reload. The page lists the queue too, so it is usable
without JavaScript.
"""

from datetime import date

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views import View

from inference.models import ModelVersion

from .. import selectors, services
from ..flags import REASONS
from ..flags import badges as flag_badges
from ..forms import MemberForm
from ..models import AuditEvent, Membership, Specimen
from ..roles import Capability, RoleRequired, can, require
from ..selectors.qa import lab_concordance
from ..selectors.review import review_queue, review_reasons
from .common import refuse

EventType = AuditEvent.EventType


class ReviewQueueView(LoginRequiredMixin, View):
    template_name = "cases/review_queue.html"

    def get(self, request):
        reason = request.GET.get("reason", "")
        reason = reason if reason in REASONS else ""
        specimen_id = _int(request.GET.get("specimen"))
        queue = review_queue(user=request.user, reason=reason, specimen_id=specimen_id)
        items = list(queue[:200])
        for item in items:
            item.flag_rows = flag_badges(item.current_flags)
        services.audit_read(
            request=request,
            event_type=EventType.REVIEW_QUEUE_VIEWED,
            extra={"images": [i.pk for i in items], "reason": reason, "specimen": specimen_id},
        )
        specimens = selectors.specimen_list(user=request.user).exclude(status__in=Specimen.SIGNED)
        return render(
            request,
            self.template_name,
            {
                "items": items,
                "reason": reason,
                "specimen_id": specimen_id,
                "reasons": review_reasons(user=request.user),
                "specimens": specimens[:200],
            },
        )


class LabQAView(LoginRequiredMixin, View):
    """The lab's agreement between model and reviewers, per model version and date range."""

    template_name = "cases/lab_qa.html"

    def get(self, request, pk):
        lab = selectors.lab_get(user=request.user, pk=pk)
        require(request.user, lab, Capability.QA)
        versions = ModelVersion.objects.filter(predictions__image__patient__lab=lab).distinct()
        version = versions.filter(version=_int(request.GET.get("version"))).first()
        version = version or versions.order_by("-version").first()
        date_from, date_to = _date(request.GET.get("from")), _date(request.GET.get("to"))
        qa = lab_concordance(lab=lab, version=version, date_from=date_from, date_to=date_to)
        services.audit_read(
            request=request,
            event_type=EventType.QA_VIEWED,
            lab=lab,
            extra={"version": getattr(version, "version", None), "images": qa.images},
        )
        rows = [
            {"label": label, "cells": qa.matrix[i] if qa.matrix else [0] * len(qa.classes)}
            for i, label in enumerate(qa.classes)
        ]
        return render(
            request,
            self.template_name,
            {
                "lab": lab,
                "qa": qa,
                "rows": rows,
                "version": version,
                "versions": versions.order_by("-version"),
                "date_from": date_from,
                "date_to": date_to,
            },
        )


class LabMembersView(LoginRequiredMixin, View):
    """The lab's members; its manager (or a staff admin) adds, changes and removes them."""

    template_name = "cases/lab_members.html"

    def get(self, request, pk, form=None, status=200):
        lab = selectors.lab_get(user=request.user, pk=pk)
        members = Membership.objects.filter(lab=lab).select_related("user")
        return render(
            request,
            self.template_name,
            {
                "lab": lab,
                "members": members.order_by("role", "user__username"),
                "form": form or MemberForm(),
                "can_manage": can(request.user, lab, Capability.MANAGE),
                "can_qa": can(request.user, lab, Capability.QA),
            },
            status=status,
        )

    def post(self, request, pk):
        lab = selectors.lab_get(user=request.user, pk=pk)
        require(request.user, lab, Capability.MANAGE)
        form = MemberForm(request.POST)
        if not form.is_valid():
            return self.get(request, pk, form=form, status=400)
        user = (
            get_user_model()
            .objects.filter(username=form.cleaned_data["username"], is_active=True)
            .first()
        )
        if user is None:
            form.add_error("username", "No active account has this username.")
            return self.get(request, pk, form=form, status=400)
        try:
            if request.POST.get("remove"):
                services.membership_remove(
                    lab=lab, user=user, by=request.user, address=services.request_address(request)
                )
                messages.success(request, f"{user.get_username()} is no longer a member.")
            else:
                services.membership_set(
                    lab=lab,
                    user=user,
                    role=form.cleaned_data["role"],
                    by=request.user,
                    address=services.request_address(request),
                )
                messages.success(request, f"{user.get_username()} is now a member.")
        except RoleRequired as exc:
            return refuse(request, str(exc))
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.get(request, pk, form=form, status=400)
        return redirect("cases:lab-members", pk=lab.pk)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _date(value) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


class LabListView(LoginRequiredMixin, View):
    def get(self, request):
        labs = [
            {
                "lab": lab,
                "role": (Membership.objects.filter(lab=lab, user=request.user).first()),
                "can_qa": can(request.user, lab, Capability.QA),
            }
            for lab in selectors.lab_list(user=request.user)
        ]
        return render(request, "cases/lab_list.html", {"labs": labs})
