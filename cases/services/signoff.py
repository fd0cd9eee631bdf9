"""Sign-off: a hematologist closes a specimen with a final interpretation; later changes are
amendments, each a new signed version with its reason. Each version's PDF report is rendered
and stored in the same transaction (``services.reports``). Every sign-off, amendment and refusal
is audited (a refusal in a transaction of its own, so it is kept although the action is not).
"""

from django.db import transaction
from django.db.models import Max

from ..models import AuditEvent, SignOff, SmearImage, Specimen
from ..roles import Capability, can, role_in
from ..selectors.review import specimen_outstanding_images, specimen_sign_state
from .audit import audit_event_create
from .lifecycle import ActionRefused
from .reports import case_report_store, report_files_discard
from .specimens import lock_specimen, specimen_transition

Status = Specimen.Status
EventType = AuditEvent.EventType


class SignOffRefused(ActionRefused):
    """The specimen cannot be signed (or amended) now; ``str(exc)`` says why."""

    def __init__(self, message: str, *, forbidden: bool = False):
        super().__init__(message)
        self.forbidden = forbidden  # the role, not the specimen's state, is the reason


def specimen_sign_out(
    *,
    specimen: Specimen,
    user,
    interpretation: str,
    comment: str = "",
    seen_verdict: int | None = None,
    seen_version: int | None = None,
    address=None,
) -> SignOff:
    """Sign ``specimen`` out: version 1 of its sign-off. Raises ``SignOffRefused``.
    ``seen_verdict``/``seen_version``: the state the signer read (``selectors.review.
    specimen_sign_state``); refused when the case moved since (``None``: not checked)."""
    return _sign(
        specimen,
        user,
        interpretation,
        comment,
        reason="",
        address=address,
        amending=False,
        seen={"seen_verdict": seen_verdict, "seen_version": seen_version},
    )


def specimen_amend(
    *,
    specimen: Specimen,
    user,
    interpretation: str,
    comment: str = "",
    reason: str,
    seen_verdict: int | None = None,
    seen_version: int | None = None,
    address=None,
) -> SignOff:
    """Amend a signed specimen: a new version; the earlier ones stay. A reason is required."""
    return _sign(
        specimen,
        user,
        interpretation,
        comment,
        reason=reason,
        address=address,
        amending=True,
        seen={"seen_verdict": seen_verdict, "seen_version": seen_version},
    )


def require_signer(*, specimen: Specimen, user, amending: bool, address=None) -> None:
    """Refuse (audited) unless ``user`` may sign in the specimen's lab; the API and the pages
    call it before reading the form, so a refusal never depends on what was filled in."""
    if can(user, specimen.lab_id, Capability.SIGN):
        return
    refusal = _role_refusal(specimen, user)
    _audit_refusal(specimen, user, refusal, amending=amending, address=address)
    raise refusal


def _sign(specimen, user, interpretation, comment, *, reason, address, amending, seen) -> SignOff:
    reason = (reason or "").strip()
    written: list[str] = []  # the report file: removed if the signature does not commit
    try:
        with transaction.atomic():
            specimen = lock_specimen(specimen.pk)
            refusal = _refusal(
                specimen, user, interpretation, amending=amending, reason=reason
            ) or _moved_since(specimen, seen)
            if refusal is None:
                return _record(specimen, user, interpretation, comment, reason, address, written)
    except BaseException:
        report_files_discard(written)
        raise
    _audit_refusal(specimen, user, refusal, amending=amending, address=address)
    raise refusal


def _audit_refusal(specimen, user, refusal, *, amending, address) -> None:
    audit_event_create(
        event_type=EventType.ACTION_REFUSED,
        acting_user=user,
        address=address,
        specimen=specimen,
        new={"action": "amend" if amending else "sign out", "refused": str(refusal)},
    )


def _role_refusal(specimen, user) -> SignOffRefused:
    role = role_in(user, specimen.lab_id)
    who = f"you are a {role}" if role else "you have no clinical role in this lab"
    return SignOffRefused(
        f"Only a hematologist of the lab may sign specimens out or amend them; {who}.",
        forbidden=True,
    )


def _refusal(specimen, user, interpretation, *, amending, reason) -> SignOffRefused | None:
    if not can(user, specimen.lab_id, Capability.SIGN):
        return _role_refusal(specimen, user)
    if interpretation not in SignOff.Interpretation.values:
        labels = ", ".join(SignOff.Interpretation.labels)
        return SignOffRefused(f"Choose the final interpretation: {labels}.")
    if amending:
        if not specimen.is_signed:
            return SignOffRefused("Only a signed-out specimen can be amended; sign it out first.")
        if not reason:
            return SignOffRefused("An amendment needs a reason.")
        return None
    if specimen.is_signed:
        return SignOffRefused(
            "This specimen is signed out already. To change it, amend it with a reason."
        )
    outstanding = specimen_outstanding_images(specimen=specimen)
    if not specimen.images.exists():
        return SignOffRefused("The specimen has no images to sign out.")
    busy = specimen.images.filter(
        status__in=(SmearImage.Status.QUEUED, SmearImage.Status.PROCESSING)
    ).count()
    if busy:
        return SignOffRefused(_busy_reason(specimen, busy))
    if outstanding:
        return SignOffRefused(
            f"{len(outstanding)} image(s) still need a verdict or an exclusion: "
            + ", ".join(f"#{pk}" for pk in outstanding[:10])
            + ("…" if len(outstanding) > 10 else "")
            + "."
        )
    return None


def _moved_since(specimen, seen: dict) -> SignOffRefused | None:
    """Refuse a signature over a case that changed after the signer read it."""
    now = specimen_sign_state(specimen=specimen)
    if seen["seen_version"] is not None and seen["seen_version"] != now["seen_version"]:
        return SignOffRefused(
            f"Version {now['seen_version']} of this specimen's sign-off was recorded after you "
            "opened the page. Nothing was signed: read it, then amend it if it still needs it."
        )
    if seen["seen_verdict"] is not None and seen["seen_verdict"] != now["seen_verdict"]:
        return SignOffRefused(
            "Verdicts were recorded on this specimen's images after you opened the page. "
            "Nothing was signed: look at the case again, then sign."
        )
    return None


def _busy_reason(specimen, busy: int) -> str:
    """Why images still being classified block the sign-off, and what to do about it."""
    from inference.artifacts import get_active_version

    waiting = not specimen.images.filter(status=SmearImage.Status.PROCESSING).exists()
    if waiting and get_active_version() is None:
        return (
            f"{busy} image(s) wait for a model version to be activated (none is active now), "
            "excluded or not: ask an administrator to activate one, and sign out once they "
            "are classified, so the signed case does not change under the signature."
        )
    return (
        f"{busy} image(s) are still being classified; sign out once they are finished "
        "(or failed), so the signed case does not change under the signature."
    )


def _record(specimen, user, interpretation, comment, reason, address, written) -> SignOff:
    version = (specimen.sign_offs.aggregate(v=Max("version"))["v"] or 0) + 1
    sign_off = SignOff.objects.create(
        specimen=specimen,
        version=version,
        interpretation=interpretation,
        comment=(comment or "").strip(),
        amendment_reason=reason,
        signed_by=user,
    )
    specimen_transition(
        specimen=specimen,
        to=Status.AMENDED if version > 1 else Status.SIGNED_OUT,
        event_type=EventType.SPECIMEN_AMENDED if version > 1 else EventType.SPECIMEN_SIGNED,
        user=user,
        address=address,
        new={
            "version": version,
            "interpretation": interpretation,
            "comment": sign_off.comment[:500],
            **({"amendment_reason": reason[:500]} if reason else {}),
            "images": SmearImage.objects.filter(specimen=specimen).count(),
        },
    )
    # Last, inside the same transaction: a version is signed with its report or not at all.
    case_report_store(sign_off=sign_off, user=user, address=address, written=written)
    return sign_off
