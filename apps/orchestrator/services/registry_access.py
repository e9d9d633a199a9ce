"""How the pipeline reaches the registry over REST: its service account, its token and one client per process."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db import transaction

from apps.accounts.services import api_token_ensure
from apps.accounts.tokens import key_derive

from ..registry_client import RegistryClient

#: Name of the service account's token whose key is derived from the SECRET_KEY.
SERVICE_TOKEN_NAME = "pipeline (derived from SECRET_KEY)"
SERVICE_TOKEN_PURPOSE = "stamm.orchestrator.pipeline-service-token"


@transaction.atomic
def service_account_ensure() -> AbstractBaseUser:
    """The pipeline's service user, holding exactly the ``predict`` capability, with its derived token.

    The token's key is never stored: every process holding the ``SECRET_KEY`` computes it
    (``local_service_key``), and only its digest is saved here, refreshed when the secret changes.
    Idempotent.
    """
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=settings.STAMM_PIPELINE_SERVICE_USER,
        defaults={"first_name": "Pipeline", "last_name": "service account", "is_active": True},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    permission = Permission.objects.get(content_type__app_label="accounts", codename="predict")
    user.user_permissions.add(permission)
    api_token_ensure(user=user, name=SERVICE_TOKEN_NAME, key=local_service_key())
    return user


def local_service_key() -> str:
    """The local pipeline service account's key: an HMAC of a fixed purpose under the ``SECRET_KEY``."""
    return key_derive(secret=settings.SECRET_KEY, purpose=SERVICE_TOKEN_PURPOSE)


def service_token() -> str:
    """The token the pipeline sends to the registry: ``STAMM_REGISTRY_TOKEN``, else the service account's."""
    if settings.STAMM_REGISTRY_TOKEN:
        return settings.STAMM_REGISTRY_TOKEN
    return _local_service_token()


@lru_cache(maxsize=1)
def _local_service_token() -> str:
    service_account_ensure()  # once per process: the digest of the derived key is in the database
    return local_service_key()


@lru_cache(maxsize=4)
def _client(base_url: str, timeout: int, retries: int, backoff_ms: int) -> RegistryClient:
    return RegistryClient(
        base_url=base_url, token=service_token, timeout=timeout, retries=retries, backoff=backoff_ms / 1000
    )


def registry_client() -> RegistryClient:
    """One keep-alive client per process, rebuilt when the settings change (as in tests)."""
    return _client(
        settings.STAMM_REGISTRY_URL,
        settings.STAMM_REGISTRY_TIMEOUT,
        settings.STAMM_PIPELINE_RETRIES,
        settings.STAMM_PIPELINE_RETRY_BACKOFF_MS,
    )


def registry_access_reset() -> None:
    """Forget this process's registry client and service token (after the settings or the token changed)."""
    _client.cache_clear()
    _local_service_token.cache_clear()
