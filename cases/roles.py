"""What each lab role may do. The one place that answers "may this user do that in this lab?".

Membership (``cases.models.Membership``) gives a user a role in a lab:

* technologist: registers patients and specimens, uploads images, records verdicts;
* hematologist: everything a technologist does, and signs specimens out and amends them;
* lab manager: manages the lab's members and reads the lab's QA page.

Every member prints, downloads and exports the lab's reports (PDF, FHIR, CSV).

Every member sees the lab's patients and specimens. Staff admins see every lab and its QA page,
and manage members, but clinical actions need a clinical role in the lab.
"""

import enum

from django.core.exceptions import PermissionDenied

from .models import Membership

Role = Membership.Role


class Capability(enum.Enum):
    VIEW = "view the lab's patients and specimens"
    REGISTER = "register patients and specimens and upload images"
    VERIFY = "record verdicts"
    REQUEUE = "send images to the model again"
    SIGN = "sign specimens out and amend them"
    QA = "see the lab's QA page"
    MANAGE = "manage the lab's members"
    REPORT = "print, download and export the lab's case reports"


GRANTS: dict[Capability, frozenset[str]] = {
    Capability.VIEW: frozenset(Role.values),
    Capability.REGISTER: frozenset({Role.TECHNOLOGIST, Role.HEMATOLOGIST}),
    Capability.VERIFY: frozenset({Role.TECHNOLOGIST, Role.HEMATOLOGIST}),
    Capability.REQUEUE: frozenset({Role.TECHNOLOGIST, Role.HEMATOLOGIST}),
    Capability.SIGN: frozenset({Role.HEMATOLOGIST}),
    Capability.QA: frozenset({Role.HEMATOLOGIST, Role.MANAGER}),
    Capability.MANAGE: frozenset({Role.MANAGER}),
    Capability.REPORT: frozenset(Role.values),
}
# Staff operate the portal (rescue stuck images, manage members, watch QA); clinical work, and
# reports that leave the portal, are for the lab's own members.
STAFF_GRANTS = frozenset({Capability.VIEW, Capability.QA, Capability.MANAGE, Capability.REQUEUE})


class RoleRequired(PermissionDenied):
    """The user sees the lab (member or staff) but their role does not allow the action.
    A ``PermissionDenied``: pages answer 403 with the message, the API 403 ``{"detail"}``."""

    def __init__(self, capability: Capability, role: str | None):
        self.capability = capability
        self.role = role
        allowed = " or ".join(sorted(Role(r).label.lower() for r in GRANTS[capability]))
        who = f"you are a {Role(role).label.lower()}" if role else "you have no such role"
        super().__init__(f"Only a {allowed} of the lab may {capability.value}; {who}.")


def is_staff(user) -> bool:
    return bool(user.is_active and user.is_staff)


def role_in(user, lab) -> str | None:
    """The user's role in ``lab`` (a Lab or its id), or ``None``."""
    if not getattr(user, "is_authenticated", False):
        return None
    lab_id = getattr(lab, "pk", lab)
    cache = getattr(user, "_lp_roles", None)
    if cache is None:
        cache = dict(Membership.objects.filter(user=user).values_list("lab_id", "role"))
        user._lp_roles = cache
    return cache.get(lab_id)


def can(user, lab, capability: Capability) -> bool:
    role = role_in(user, lab)
    if role is not None and role in GRANTS[capability]:
        return True
    return is_staff(user) and capability in STAFF_GRANTS


def require(user, lab, capability: Capability) -> str | None:
    """Raise ``RoleRequired`` unless the user may; returns their role in the lab."""
    if not can(user, lab, capability):
        raise RoleRequired(capability, role_in(user, lab))
    return role_in(user, lab)


def lab_ids(user, capability: Capability = Capability.VIEW) -> list[int] | None:
    """The labs where the user may do ``capability``; ``None`` means every lab (staff)."""
    if is_staff(user) and capability in STAFF_GRANTS:
        return None
    if not getattr(user, "is_authenticated", False):
        return []
    role_in(user, 0)  # fill the cache
    return [lab for lab, role in user._lp_roles.items() if role in GRANTS[capability]]


def forget_roles(user) -> None:
    """Drop the per-request cache after a membership change."""
    if hasattr(user, "_lp_roles"):
        del user._lp_roles
