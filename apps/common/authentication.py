"""Authentication classes shared by the apps."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.settings import api_settings


class TokenBasicAuthentication(BasicAuthentication):
    """HTTP basic authentication whose password is an API token (the user name is not checked).

    For clients that can send only basic credentials (MLflow's scoring client reads them from ``.netrc``).
    The token is checked by the configured token authentication class, so tokens stay the one credential of
    the API; a password is never accepted here.
    """

    def authenticate_credentials(self, userid, password, request=None):
        for authentication_class in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
            checker = authentication_class()
            if hasattr(checker, "authenticate_credentials") and not isinstance(checker, BasicAuthentication):
                try:
                    return checker.authenticate_credentials(password)
                except TypeError:
                    continue  # not a token class (another signature)
        raise AuthenticationFailed("Invalid token.")

    def authenticate_header(self, request) -> str:
        return 'Basic realm="api"'


class TokenBasicScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema documents ``TokenBasicAuthentication``."""

    target_class = "apps.common.authentication.TokenBasicAuthentication"
    name = "tokenBasicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "Any user name; the password is an API token."}
