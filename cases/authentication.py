"""API token authentication with an expiry (``LP_API_TOKEN_TTL``)."""

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from . import services


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication; a token older than ``LP_API_TOKEN_TTL`` is refused."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if services.token_is_expired(token):
            raise exceptions.AuthenticationFailed(
                "The token has expired; obtain a new one from /api/v1/auth/token/."
            )
        return user, token
