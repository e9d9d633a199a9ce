"""Role groups hold exactly their capabilities; demo users get random passwords written once."""
import stat

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.accounts.roles import ROLE_CAPABILITIES
from apps.accounts.services import demo_users_ensure, roles_ensure

pytestmark = pytest.mark.django_db


def test_groups_exist_after_migrate_with_exact_capabilities():
    for role, capabilities in ROLE_CAPABILITIES.items():
        group = Group.objects.get(name=role)
        assert set(group.permissions.values_list("codename", flat=True)) == set(capabilities)


def test_roles_ensure_is_idempotent_and_repairs_drift():
    operator = Group.objects.get(name="operator")
    operator.permissions.clear()
    roles_ensure()
    roles_ensure()
    assert Group.objects.filter(name="operator").count() == 1
    assert set(operator.permissions.values_list("codename", flat=True)) == set(ROLE_CAPABILITIES["operator"])


def test_operator_cannot_manage_models_but_modeler_can(role_users):
    assert not role_users["operator"].has_perm("accounts.manage_models")
    assert role_users["modeler"].has_perm("accounts.manage_models")
    assert not role_users["manager"].has_perm("accounts.ingest_data")
    assert not role_users["outsider"].has_perm("accounts.use_platform")


def test_demo_users_random_passwords_written_once(tmp_path):
    path = tmp_path / "demo-credentials.txt"
    created = demo_users_ensure(credentials_path=path)
    assert sorted(c.role for c in created) == ["admin", "manager", "modeler", "operator"]
    assert len({c.password for c in created}) == 4
    assert all(len(c.password) >= 12 for c in created)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    User = get_user_model()
    for cred in created:
        assert f"password={cred.password}" in text
        user = User.objects.get(username=cred.username)
        assert user.check_password(cred.password)
        assert user.groups.filter(name=cred.role).exists()
    assert User.objects.get(username="admin").is_superuser
    assert not User.objects.get(username="operator").is_staff

    again = demo_users_ensure(credentials_path=path)
    assert again == []
    assert path.read_text() == text
