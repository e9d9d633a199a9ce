"""The audit trail: a row for every create, update and delete of what decides an estimate or a user's rights,
through the pages, the API and the admin, with who, when, from where and what changed; append-only."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from auditlog.models import AbstractLogEntry
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client

from apps.audit.guard import guard_install
from apps.audit.models import AppendOnly, AuditEntry, Signature
from apps.audit.tracking import audited_models, audited_update
from apps.orchestrator.models import Deployment
from apps.registry.models import ModelVersion, SigningPolicy
from apps.training.models import TrainingPlan

CREATE, UPDATE, DELETE = AbstractLogEntry.Action.CREATE, AbstractLogEntry.Action.UPDATE, AbstractLogEntry.Action.DELETE
APPS = Path(__file__).resolve().parents[2] / "apps"


def rows(model, pk=None, action=None):
    from django.contrib.contenttypes.models import ContentType

    queryset = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(model))
    if pk is not None:
        queryset = queryset.filter(object_pk=str(pk))
    if action is not None:
        queryset = queryset.filter(action=action)
    return list(queryset.order_by("id"))


@pytest.fixture
def version(db, role_users):
    from tests.orchestrator.helpers import register_rf

    version, _ = register_rf(user=role_users["modeler"])  # production, signed by the test signer
    return version


def signed_in(user) -> Client:
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.force_login(user)
    return client


def test_what_is_audited():
    """Versions and status, aliases, deployments, bias parameters, training plans and runs (gates), alerts,
    flags, users, groups and tokens, and the registry's dictionary and signing policy."""
    labels = {f"{m._meta.app_label}.{m._meta.model_name}" for m in audited_models()}
    assert labels == {
        "auth.user",
        "auth.group",
        "accounts.apitoken",
        "registry.project",
        "registry.variable",
        "registry.softsensor",
        "registry.modelversion",
        "registry.versionartifact",
        "registry.alias",
        "registry.aliasmove",
        "registry.descriptorrevision",
        "registry.signingpolicy",
        "registry.runtimeenvironment",
        "orchestrator.deployment",
        "orchestrator.biascorrection",
        "training.trainingplan",
        "training.trainingrun",
        "training.projectprofile",
        "training.promotionrequest",
        "drift.alert",
        "drift.alertsilence",
        "dashboard.pointflag",
    }


def test_deployments_through_the_api_are_audited_with_actor_and_address(version, api_client_for, role_users):
    client = api_client_for("modeler")
    created = client.post(
        "/api/v1/orchestrator/deployments/create/",
        {"name": "audited", "project_id": "P0001", "model_id": version.soft_sensor.model_id, "alias": "production"},
        format="json",
        REMOTE_ADDR="10.9.8.7",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert (
        client.patch(
            f"/api/v1/orchestrator/deployments/{pk}/update/", {"max_input_age_seconds": 900}, format="json"
        ).status_code
        == 200
    )
    assert client.post(f"/api/v1/orchestrator/deployments/{pk}/delete/").status_code == 204
    create, update, delete = rows(Deployment, pk)
    assert (create.action, update.action, delete.action) == (CREATE, UPDATE, DELETE)
    # The token was authenticated inside DRF's view, after the middleware: the actor is still known.
    assert {e.actor_username for e in (create, update, delete)} == {"test-modeler"}
    assert {e.via for e in (create, update, delete)} == {"api"} and create.remote_addr == "10.9.8.7"
    assert create.actor_id == role_users["modeler"].pk
    assert update.changes == {"max_input_age_seconds": [3600, 900]}
    assert create.changes["name"] == [None, "audited"]


def test_deployments_through_the_admin_are_audited(version, role_users):
    client = signed_in(role_users["admin"])
    form = {
        "name": "by-admin",
        "description": "",
        "soft_sensor": version.soft_sensor_id,
        "alias": "production",
        "pinned_version": "",
        "device_ids": "[]",
        "batch_pattern": "",
        "input_mapping": "{}",
        "max_input_age_seconds": 3600,
        "enabled": "on",
        "shadow_of": "",
    }
    response = client.post("/admin/orchestrator/deployment/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    deployment = Deployment.objects.get(name="by-admin")
    response = client.post(
        f"/admin/orchestrator/deployment/{deployment.pk}/change/", {**form, "description": "changed in the admin"}
    )
    assert response.status_code == 302
    assert client.post(f"/admin/orchestrator/deployment/{deployment.pk}/delete/", {"post": "yes"}).status_code == 302
    create, update, delete = rows(Deployment, deployment.pk)
    assert (create.action, update.action, delete.action) == (CREATE, UPDATE, DELETE)
    assert {e.via for e in (create, update, delete)} == {"admin"}
    assert update.changes == {"description": ["", "changed in the admin"]}
    assert update.actor_username == "test-admin" and update.remote_addr == "10.1.2.3"
    # The admin's History page of a record shows its trail.
    page = client.get(f"/admin/orchestrator/deployment/{version.pk}/history/")
    assert page.status_code in (200, 302, 404)


def test_users_groups_and_tokens_through_the_admin_and_pages(role_users, django_user_model):
    client = signed_in(role_users["admin"])
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "new-operator",
            "password1": "a-Long-passw0rd!",
            "password2": "a-Long-passw0rd!",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    user = django_user_model.objects.get(username="new-operator")
    operators = Group.objects.get(name="operator")
    user.groups.add(operators)  # who holds which role
    user.set_password("another-long-passw0rd")
    user.save()
    (create,) = rows(django_user_model, user.pk, CREATE)
    assert create.via == "admin" and "password" in create.changes
    assert create.changes["password"][1] == "(secret)"  # recorded as changed, never its hash
    updates = rows(django_user_model, user.pk, UPDATE)
    assert any(e.changes.get("groups", {}).get("objects") == ["operator"] for e in updates)
    assert any(e.changes.get("password") == ["(secret)", "(secret)"] for e in updates)
    assert client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"}).status_code == 302
    assert rows(django_user_model, user.pk, DELETE)[0].actor_username == "test-admin"
    # Groups: created, their permissions changed, deleted.
    group = Group.objects.create(name="auditors")
    group.permissions.add(*operators.permissions.all()[:1])
    group_pk = group.pk
    group.delete()
    assert [e.action for e in rows(Group, group_pk)] == [CREATE, UPDATE, DELETE]
    # Tokens (issued and revoked on the token page): recorded under the owner, never with their key.
    from apps.accounts.models import ApiToken

    page = signed_in(role_users["operator"])
    first = page.post("/account/token/", {"action": "create", "name": "historian"})
    assert first.status_code == 201
    revoked = ApiToken.objects.get(user=role_users["operator"], name="historian")
    page.post("/account/token/", {"action": "revoke", "token": revoked.pk})
    second = page.post("/account/token/", {"action": "create", "name": "lims"})
    key = second.context["new_key"]
    token_rows = rows(ApiToken)
    assert [e.action for e in token_rows] == [CREATE, DELETE, CREATE]
    assert all(key not in str(e.changes) and key not in e.object_pk and key not in e.object_repr for e in token_rows)
    assert token_rows[0].object_pk == f"token:{revoked.pk}" and token_rows[0].via == "ui"
    assert token_rows[0].actor_username == role_users["operator"].username


def test_versions_and_aliases_through_the_pages(version, role_users):
    client = signed_in(role_users["modeler"])
    model = f"/registry/P0001/models/{version.soft_sensor.model_id}/"
    client.post(f"{model}v{version.number}/status/", {"status": "offline", "description": "checking"})
    (status,) = [e for e in rows(ModelVersion, version.pk, UPDATE) if "status" in e.changes]
    assert status.changes["status"] == ["online", "offline"] and status.via == "ui"
    assert status.actor_username == "test-modeler"
    client.post(f"{model}alias/", {"alias": "staging", "version": version.number, "reason": "try it"})
    from apps.registry.models import Alias, AliasMove

    staging = Alias.objects.get(name="staging")
    assert rows(Alias, staging.pk, CREATE)[0].via == "ui"
    assert rows(AliasMove, AliasMove.objects.get(alias_name="staging").pk, CREATE)[0].changes["reason"][1] == "try it"


def test_training_plans_through_pages_api_and_admin(version, role_users, api_client_for):
    # API
    client = api_client_for("modeler")
    body = {
        "name": "weekly",
        "project_id": "P0001",
        "config": {"target": "penicillin_concentration"},
        "schedule": "0 3 * * 1",
    }
    created = client.post("/api/v1/training/plans/create/", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert (
        client.patch(f"/api/v1/training/plans/{pk}/update/", {"schedule": "0 4 * * 1"}, format="json").status_code
        == 200
    )
    assert client.post(f"/api/v1/training/plans/{pk}/delete/").status_code == 204
    assert [(e.action, e.via) for e in rows(TrainingPlan, pk)] == [(CREATE, "api"), (UPDATE, "api"), (DELETE, "api")]
    assert rows(TrainingPlan, pk, UPDATE)[0].changes == {"schedule": ["0 3 * * 1", "0 4 * * 1"]}
    # Pages
    page = signed_in(role_users["modeler"])
    response = page.post(
        "/training/plans/",
        {
            "name": "nightly",
            "project": "P0001",
            "window_days": 90,
            "holdout_newest": 2,
            "lab_error_samples": 5,
            "schedule": "",
            "config": '{"target": "penicillin_concentration"}',
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    plan = TrainingPlan.objects.get(name="nightly")
    page.post(f"/training/plans/{plan.pk}/action/", {"action": "disable"})
    page.post(f"/training/plans/{plan.pk}/action/", {"action": "delete"})
    assert [(e.action, e.via) for e in rows(TrainingPlan, plan.pk)] == [(CREATE, "ui"), (UPDATE, "ui"), (DELETE, "ui")]
    # Admin
    admin = signed_in(role_users["admin"])
    form = {
        "name": "by-admin",
        "description": "",
        "project": version.soft_sensor.project_id,
        "config": '{"target": "penicillin_concentration"}',
        "device_id": "",
        "batch_pattern": "",
        "window_days": 90,
        "holdout_newest": 2,
        "quiet_seconds": 3600,
        "max_batches": 30,
        "schedule": "",
        "deployment": "",
        "lab_error_samples": 5,
        "enabled": "on",
    }
    response = admin.post("/admin/training/trainingplan/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    plan = TrainingPlan.objects.get(name="by-admin")
    admin.post(f"/admin/training/trainingplan/{plan.pk}/change/", {**form, "window_days": 60})
    admin.post(f"/admin/training/trainingplan/{plan.pk}/delete/", {"post": "yes"})
    assert [(e.action, e.via) for e in rows(TrainingPlan, plan.pk)] == [
        (CREATE, "admin"),
        (UPDATE, "admin"),
        (DELETE, "admin"),
    ]
    # A bad plan in the admin is a form error, not a server error.
    bad = admin.post("/admin/training/trainingplan/add/", {**form, "name": "bad", "schedule": "every day"})
    assert bad.status_code == 200 and "crontab" in bad.content.decode()


def test_signing_policy_through_the_admin(version, role_users):
    client = signed_in(role_users["admin"])
    project = version.soft_sensor.project
    form = {"project": project.pk, "signed_aliases": '["validated"]', "two_person_rule": "on"}
    assert client.post("/admin/registry/signingpolicy/add/", form).status_code == 302
    policy = SigningPolicy.objects.get()
    client.post(f"/admin/registry/signingpolicy/{policy.pk}/change/", {**form, "two_person_rule": ""})
    client.post(f"/admin/registry/signingpolicy/{policy.pk}/delete/", {"post": "yes"})
    trail = rows(SigningPolicy, policy.pk)
    assert [e.action for e in trail] == [CREATE, UPDATE, DELETE]
    assert trail[1].changes == {"two_person_rule": [True, False]}
    history = client.get(f"/admin/registry/modelversion/{version.pk}/history/")
    assert history.status_code == 200 and "The audit trail of this record" in history.content.decode()


def test_bulk_updates_of_audited_rows_leave_the_same_trail(version):
    audited_update(ModelVersion.objects.filter(pk=version.pk), status_description="bulk")
    (entry,) = [e for e in rows(ModelVersion, version.pk, UPDATE) if "status_description" in e.changes]
    assert entry.changes["status_description"][1] == "bulk" and entry.actor_username == "system"
    before = AuditEntry.objects.count()
    audited_update(ModelVersion.objects.filter(pk=version.pk), first_predicted_at=None)  # not a tracked field
    assert AuditEntry.objects.count() == before


def test_no_audited_model_is_updated_behind_the_trail():
    """``QuerySet.update`` sends no signal: services update audited rows through ``audited_update`` only."""
    names = sorted({m.__name__ for m in audited_models()} - {"User", "Group", "ApiToken"})  # tokens: create, delete
    call = r"\.\w+\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)"  # .method(...) with two levels of nesting
    pattern = re.compile(r"\b(" + "|".join(names) + r")\.objects(?:" + call + r")+\s*\.update\(")
    assert pattern.search("ModelVersion.objects.filter(\n    pk=version.pk, status=get(1)\n).update(status=x)")
    offenders = []
    for path in APPS.rglob("*.py"):
        text = path.read_text()
        for match in pattern.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1
            line = text[start : text.find("\n", match.start())]
            if "audited_update(" not in text[max(0, start - 40) : match.start()]:
                offenders.append(f"{path.relative_to(APPS)}: {line.strip()}")
    assert offenders == []


def test_nobody_edits_the_trail(version, role_users, api_client_for):
    entry = AuditEntry.objects.first()
    entry.object_repr = "forged"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(object_repr="forged")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()
    with pytest.raises(AppendOnly):
        Signature.objects.all().delete()
    # Not even an administrator through the admin (no change, no delete, no add) or through the API.
    admin = signed_in(role_users["admin"])
    assert admin.get(f"/admin/audit/auditentry/{entry.pk}/change/").status_code == 200  # view only
    assert admin.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"object_repr": "x"}).status_code == 403
    assert admin.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin.get("/admin/audit/auditentry/add/").status_code == 403
    api = api_client_for("admin")
    assert api.post("/api/v1/audit/entries/", {}, format="json").status_code == 405
    assert api.delete("/api/v1/audit/entries/").status_code == 405
    assert AuditEntry.objects.get(pk=entry.pk).object_repr != "forged"


def test_the_database_refuses_changes_to_the_trail(version):
    """The migration's triggers (installed here: the test settings leave them out) abort UPDATE and DELETE."""
    from django.db import DatabaseError

    with transaction.atomic():
        guard_install(connection)
        entry = AuditEntry.objects.first()
        for sql in (
            "UPDATE audit_auditentry SET object_repr = 'x' WHERE id = %s",
            "DELETE FROM audit_auditentry WHERE id = %s",
        ):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(sql, [entry.pk])
        assert AuditEntry.objects.filter(pk=entry.pk).exists()
        transaction.set_rollback(True)  # the triggers go with the test's transaction


def test_filter_and_export_over_the_api(version, api_client_for):
    client = api_client_for("manager")
    listing = client.get("/api/v1/audit/entries/", {"model": "registry.alias", "action": "create"})
    assert listing.status_code == 200
    results = listing.json()["results"]
    assert results and all(r["model"] == "registry.alias" and r["action"] == "create" for r in results)
    assert {"field": "name", "before": None, "after": "production"} in results[0]["changes"]
    bad = client.get("/api/v1/audit/entries/", {"model": "registry.nothing"})
    assert bad.status_code == 400 and "not audited" in bad.json()["error"]["message"]
    assert client.get("/api/v1/audit/entries/", {"since": "yesterday"}).status_code == 400
    exported = client.get("/api/v1/audit/entries/export/", {"model": "registry.alias"})
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert table[0][:4] == ["id", "timestamp", "action", "model"]
    assert any(row[3] == "registry.alias" and row[9] == "name" and row[11] == "production" for row in table[1:])
    signatures = client.get("/api/v1/audit/signatures/", {"outcome": "accepted"}).json()["results"]
    assert signatures and signatures[0]["action"].startswith("move production")
    # Operators do not read the trail.
    assert api_client_for("operator").get("/api/v1/audit/entries/").status_code == 403


def test_exported_cells_never_run_as_formulas(version, api_client_for, role_users):
    from apps.registry.services import alias_move

    alias_move(
        soft_sensor=version.soft_sensor,
        name="staging",
        version=version,
        user=role_users["modeler"],
        reason='=HYPERLINK("http://x")',
    )
    exported = api_client_for("admin").get("/api/v1/audit/entries/export/", {"model": "registry.aliasmove"})
    text = b"".join(exported.streaming_content).decode()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_pages_show_the_trail(version, role_users):
    client = signed_in(role_users["manager"])
    page = client.get("/audit/", {"model": "registry.alias"})
    assert page.status_code == 200 and "production" in page.content.decode()
    assert client.get("/audit/signatures/").status_code == 200
    assert signed_in(role_users["operator"]).get("/audit/").status_code == 403
    detail = signed_in(role_users["modeler"]).get(f"/registry/P0001/models/{version.soft_sensor.model_id}/")
    assert 'data-testid="audit-history"' in detail.content.decode()
