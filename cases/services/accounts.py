"""Accounts: first-run accounts, API tokens (issued, expired, revoked), sign-in events."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from ..models import AuditEvent
from .audit import audit_event_create


def user_ensure(*, username: str, password: str, is_staff: bool = False) -> tuple[object, bool]:
    """Create the account if it does not exist yet; never changes an existing one."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    if is_staff:
        user = User.objects.create_superuser(username=username, password=password, email="")
    else:
        user = User.objects.create_user(username=username, password=password)
    return user, True


def token_is_expired(token: Token) -> bool:
    return timezone.now() - token.created > settings.LP_API_TOKEN_TTL


def token_issue(*, user, address=None) -> Token:
    """The user's API token: the current one while it is valid, else a new one (audited)."""
    with transaction.atomic():
        token = Token.objects.select_for_update().filter(user=user).first()
        if token is not None and not token_is_expired(token):
            return token
        if token is not None:
            token.delete()
        try:
            with transaction.atomic():
                token = Token.objects.create(user=user)
        except IntegrityError:  # a parallel request issued it first
            return Token.objects.get(user=user)
        audit_event_create(
            event_type=AuditEvent.EventType.TOKEN_ISSUED,
            acting_user=user,
            address=address,
            new={"expires": (token.created + settings.LP_API_TOKEN_TTL).isoformat()},
        )
    return token


def token_revoke(*, user, address=None, reason: str = "revoked by the user") -> bool:
    """Delete the user's API token; ``False`` when there was none."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
        if deleted:
            audit_event_create(
                event_type=AuditEvent.EventType.TOKEN_REVOKED,
                acting_user=user,
                address=address,
                new={"reason": reason},
            )
    return bool(deleted)


def sign_in_recorded(*, user, address=None) -> None:
    audit_event_create(
        event_type=AuditEvent.EventType.LOGIN_SUCCEEDED, acting_user=user, address=address
    )


def sign_in_failed_recorded(*, username: str, address=None) -> None:
    audit_event_create(
        event_type=AuditEvent.EventType.LOGIN_FAILED,
        address=address,
        extra={"username": (username or "")[:150]},
    )


def sign_out_recorded(*, user, address=None) -> None:
    """Audit the sign-out, and end the user's API token with the session."""
    audit_event_create(event_type=AuditEvent.EventType.LOGOUT, acting_user=user, address=address)
    token_revoke(user=user, address=address, reason="signed out")
