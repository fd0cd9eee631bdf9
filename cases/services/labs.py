"""Labs and their members. A lab manager (or a staff admin) adds, changes and removes members;
each change is audited. A lab always keeps at least one manager or hematologist."""

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import AuditEvent, Lab, Membership
from ..roles import Capability, forget_roles, require
from .audit import audit_event_create

EventType = AuditEvent.EventType


def lab_ensure(*, name: str) -> tuple[Lab, bool]:
    """The lab called ``name``, created if missing (first-run set-up)."""
    return Lab.objects.get_or_create(name=name.strip())


def membership_set(*, lab: Lab, user, role: str, by=None, address=None) -> Membership:
    """Give ``user`` the ``role`` in ``lab`` (add, or change the role). ``by`` must manage the
    lab; ``None`` is the first-run set-up."""
    if by is not None:
        require(by, lab, Capability.MANAGE)
    if role not in Membership.Role.values:
        raise ValidationError(f"Unknown role {role!r}.", code="invalid")
    with transaction.atomic():
        Lab.objects.select_for_update().get(pk=lab.pk)
        membership = Membership.objects.filter(lab=lab, user=user).first()
        old = membership.role if membership else None
        if old == role:
            return membership
        if membership is None:
            membership = Membership.objects.create(lab=lab, user=user, role=role)
        else:
            membership.role = role
            membership.save(update_fields=["role"])
            _keep_a_lead(lab)
        audit_event_create(
            event_type=EventType.MEMBERSHIP_ADDED if old is None else EventType.MEMBERSHIP_CHANGED,
            acting_user=by,
            address=address,
            lab=lab,
            old={"user": user.get_username(), "role": old} if old else None,
            new={"user": user.get_username(), "role": role},
        )
    forget_roles(user)
    return membership


def membership_remove(*, lab: Lab, user, by, address=None) -> None:
    require(by, lab, Capability.MANAGE)
    with transaction.atomic():
        Lab.objects.select_for_update().get(pk=lab.pk)
        membership = Membership.objects.filter(lab=lab, user=user).first()
        if membership is None:
            return
        role = membership.role
        membership.delete()
        _keep_a_lead(lab)
        audit_event_create(
            event_type=EventType.MEMBERSHIP_REMOVED,
            acting_user=by,
            address=address,
            lab=lab,
            old={"user": user.get_username(), "role": role},
        )
    forget_roles(user)


def _keep_a_lead(lab: Lab) -> None:
    leads = (Membership.Role.MANAGER, Membership.Role.HEMATOLOGIST)
    if not Membership.objects.filter(lab=lab, role__in=leads).exists():
        raise ValidationError(
            "A lab keeps at least one lab manager or hematologist.", code="last_lead"
        )
