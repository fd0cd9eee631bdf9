"""API tokens: obtain (with the sign-in lockout) and revoke."""

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import APIView

from leukemia_portal.lockout import lockout_response

from .. import services
from ..models import AuditEvent
from .common import VALIDATION_ERROR

EventType = AuditEvent.EventType


# --- Authentication ---------------------------------------------------------------------------


class TokenObtainApi(ObtainAuthToken):
    """DRF's ``obtain_auth_token`` with an expiry. Password guessing is stopped by the same
    lockout as the login pages (django-axes, counted in the database for every process)."""

    authentication_classes = ()  # a stale token sent along must not stand in the way

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")

        class Meta:
            ref_name = "Token"

    @extend_schema(
        summary="Obtain an API token",
        tags=["auth"],
        description="Exchange a username and password for the user's API token. The same "
        "token is returned until it expires (`LP_API_TOKEN_TTL_HOURS`, 8 hours by default), "
        "is revoked, or the user signs out of the portal. After 5 failed attempts for one "
        "account or from one address, sign-in is refused for 15 minutes (429).",
        request=AuthTokenSerializer,
        responses={
            200: OutputSerializer,
            400: VALIDATION_ERROR,
            429: OpenApiResponse(description="Too many failed attempts; try again later."),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        valid = serializer.is_valid()
        # django-axes flags a locked-out attempt on the request it was given: here DRF's
        # wrapper, which its middleware does not see. Answer the lockout here.
        if getattr(request, "axes_locked_out", False):
            return lockout_response(request._request)
        if not valid:
            raise serializers.ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        # A sign-in like the login page's: audited, resets the failure count, sets last_login.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        token = services.token_issue(user=user, address=services.request_address(request))
        return Response({"token": token.key})


class TokenRevokeApi(APIView):
    @extend_schema(
        summary="Revoke your API token",
        tags=["auth"],
        description="The token stops working at once. 204 whether or not a token existed.",
        request=None,
        responses={204: None},
    )
    def post(self, request):
        services.token_revoke(user=request.user, address=services.request_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
