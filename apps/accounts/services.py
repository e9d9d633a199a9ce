"""Writes of the accounts app: role groups, demo users, API tokens."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import transaction
from rest_framework.authtoken.models import Token

from .roles import ADMIN, ROLE_CAPABILITIES, ROLE_PRIORITY


@transaction.atomic
def roles_ensure(*, using: str = "default") -> dict[str, int]:
    """Create the role groups and set their capability permissions exactly; safe to run any time."""
    permissions = {
        p.codename: p
        for p in Permission.objects.using(using).filter(content_type__app_label="accounts", codename__in={
            codename for caps in ROLE_CAPABILITIES.values() for codename in caps
        })
    }
    counts: dict[str, int] = {}
    for role, capabilities in ROLE_CAPABILITIES.items():
        missing = [c for c in capabilities if c not in permissions]
        if missing:
            raise RuntimeError(f"Capability permissions missing for role {role}: {', '.join(missing)}")
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.set([permissions[c] for c in capabilities])
        counts[role] = len(capabilities)
    return counts


@dataclass(frozen=True)
class DemoCredential:
    username: str
    role: str
    password: str


def _write_credentials(path: Path, credentials: list[DemoCredential]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Demo users created by `make run`. Passwords are random and shown only here.\n"]
    lines += [f"{c.role:<9} username={c.username:<10} password={c.password}\n" for c in credentials]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(lines)


@transaction.atomic
def demo_users_ensure(*, credentials_path: Path) -> list[DemoCredential]:
    """One demo user per role with a random password; existing users are left untouched.

    Returns the users created now (with their passwords, which are never stored in clear elsewhere than
    the credentials file, written with mode 0600). Running it again creates nothing.
    """
    roles_ensure()
    User = get_user_model()
    created: list[DemoCredential] = []
    for role in ROLE_PRIORITY:
        username = role
        if User.objects.filter(username=username).exists():
            continue
        password = secrets.token_urlsafe(12)
        is_admin = role == ADMIN
        user = User.objects.create_user(
            username=username,
            password=password,
            email=f"{username}@demo.invalid",
            first_name=f"Demo {role}",
            is_staff=is_admin,
            is_superuser=is_admin,
        )
        user.groups.add(Group.objects.get(name=role))
        created.append(DemoCredential(username=username, role=role, password=password))
    if created:
        existing: list[DemoCredential] = []
        if credentials_path.exists():
            new_names = {c.username for c in created}
            existing = [c for c in _read_credentials(credentials_path) if c.username not in new_names]
        _write_credentials(credentials_path, existing + created)
    return created


def _read_credentials(path: Path) -> list[DemoCredential]:
    result = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        fields = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
        if "username" in fields and "password" in fields:
            result.append(DemoCredential(username=fields["username"], role=parts[0], password=fields["password"]))
    return result


@transaction.atomic
def api_token_rotate(*, user: AbstractUser) -> Token:
    """Replace the user's API token: the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)
