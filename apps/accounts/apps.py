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
