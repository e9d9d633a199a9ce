from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        from . import navigation  # noqa: F401  (registers the links every role home shows)
        from .signals import ensure_roles_after_migrate

        # Permissions are created in post_migrate, so the role groups are synced right after them.
        post_migrate.connect(ensure_roles_after_migrate, dispatch_uid="accounts.ensure_roles")
        _audit_accounts()


def _audit_accounts() -> None:
    """Users, role groups (and who is in them, which permissions they hold) and API tokens are audited."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from apps.audit.tracking import audit_register, audit_register_secret

    from .models import ApiToken

    audit_register(
        get_user_model(), exclude=("last_login",), secret=("password",), m2m=("groups", "user_permissions"),
        label="user",
    )
    audit_register(Group, m2m=("permissions",), label="role group")
    audit_register_secret(
        ApiToken,
        describe=lambda token: f"API token {token.name!r} ({token.prefix}…) of {token.user}",
        object_id=lambda token: f"token:{token.pk}",
        label="API token",
    )
