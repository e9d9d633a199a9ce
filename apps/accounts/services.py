"""Writes of the accounts app: role groups, demo users, API tokens."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import transaction
from django.utils import timezone

from apps.common.errors import NotFound, ValidationFailed

from .models import ApiToken
from .roles import ADMIN, ROLE_CAPABILITIES, ROLE_PRIORITY
from .tokens import key_digest, key_generate, key_shown

#: How stale ``ApiToken.last_used_at`` may get: one write a minute per token, not one per request.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


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


def demo_password(*, username: str, credentials_path: Path) -> str | None:
    """A demo user's password from the credentials file (what the demo seed signs ``production`` with), if kept."""
    if not credentials_path.exists():
        return None
    return next((c.password for c in _read_credentials(credentials_path) if c.username == username), None)


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
def api_token_create(*, user: AbstractUser, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Issue a new token; returns it with its key, which is not stored and cannot be shown again."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name: say what the token is for.", details={"name": "required"})
    if len(name) > 100:
        raise ValidationFailed("name: at most 100 characters.", details={"name": "too long"})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("expires_at: must be in the future.", details={"expires_at": "in the past"})
    key = key_generate()
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key_shown(key), digest=key_digest(key), expires_at=expires_at
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, user: AbstractUser, token_id: int) -> None:
    """Delete one of ``user``'s tokens: it stops working at once."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    if not deleted:
        raise NotFound(f"You have no token {token_id}.", details={"token": token_id})


@transaction.atomic
def api_token_ensure(*, user: AbstractUser, name: str, key: str) -> ApiToken:
    """Make ``key`` (computed, not stored, by its holder) a valid token of ``user`` named ``name``.

    For service accounts whose key is derived from the ``SECRET_KEY``: the digest is stored once; when
    the secret changes, the old token of that name is replaced. Idempotent.
    """
    digest = key_digest(key)
    token = ApiToken.objects.filter(digest=digest).first()
    if token is not None:
        if token.user_id != user.pk:
            raise ValidationFailed("key: belongs to another user.", details={"key": "taken"})
        return token
    ApiToken.objects.filter(user=user, name=name).delete()
    return ApiToken.objects.create(user=user, name=name, prefix=key_shown(key), digest=digest)


def api_token_touch(*, token: ApiToken) -> None:
    """Record that ``token`` was used now; at most one write a minute per token."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
