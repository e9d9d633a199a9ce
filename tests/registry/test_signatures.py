"""Electronic signatures on signed aliases: a move without a valid signature is refused and leaves no trace but
the refused attempt; the signature is bound to the version's sha256; the two-person rule holds per project."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry, Outcome, Signature
from apps.audit.services import MAX_FAILED_PASSWORDS, SignatureInput, SignatureRefused
from apps.registry.models import Alias, AliasMove, ModelVersion, SigningPolicy
from apps.registry.selectors import version_sha256
from apps.registry.services import alias_delete, alias_move
from tests.conftest import issue_token, make_user

PASSWORD = "correct-horse-battery"
SS = "/api/v1/registry/projects/P0001/soft-sensors/0001_%5Bpython%5D_penicillin_RF"


def counts() -> dict[str, int]:
    return {
        "alias": Alias.objects.count(),
        "moves": AliasMove.objects.count(),
        "audit": AuditEntry.objects.count(),
        "accepted": Signature.objects.filter(outcome=Outcome.ACCEPTED).count(),
    }


def sign(version, *, password=PASSWORD, meaning="approved", reason="validated", sha256=None) -> SignatureInput:
    return SignatureInput(password=password, meaning=meaning, reason=reason, sha256=sha256 or version_sha256(version))


@pytest.fixture
def version(register):
    version, _ = register("rf")
    return version


REFUSALS = {
    "no signature": (None, "needs an electronic signature"),
    "wrong password": ({"password": "not-my-password"}, "the password is not this signer's"),
    "another version's hash": ({"sha256": "0" * 64}, "the sha256 signed"),
    "reviewed only": ({"meaning": "reviewed"}, "the meaning must be approved"),
    "no reason": ({"reason": " "}, None),  # the move's own reason is required first: a 400, not a signature
}


@pytest.mark.parametrize("case", [k for k in REFUSALS if k != "no reason"])
def test_an_unsigned_or_badly_signed_move_leaves_only_the_refused_attempt(version, role_users, case):
    overrides, why = REFUSALS[case]
    before = counts()
    given = None if overrides is None else sign(version, **overrides)
    with pytest.raises(SignatureRefused, match="signature refused"):
        alias_move(
            soft_sensor=version.soft_sensor,
            name="production",
            version=version,
            user=role_users["modeler"],
            reason="validated on batch 96",
            signature=given,
        )
    assert counts() == before  # no alias, no move, no audit row, no accepted signature
    refused = Signature.objects.get(outcome=Outcome.REFUSED)
    assert why in refused.refusal and refused.signer_username == "test-modeler"
    assert refused.subject_type == "registry.modelversion" and refused.subject_id == str(version.pk)
    assert refused.action == f"move production of {version.soft_sensor.model_id} (v{version.number})"


def test_a_valid_signature_moves_production_bound_to_the_sha256(version, role_users):
    move_alias = alias_move(
        soft_sensor=version.soft_sensor,
        name="production",
        version=version,
        user=role_users["modeler"],
        reason="validated on batch 96",
        signature=sign(version),
    )
    move = AliasMove.objects.get()
    signature = move.signature
    assert move_alias.version_id == version.pk and signature.outcome == Outcome.ACCEPTED
    assert signature.subject_sha256 == version_sha256(version) and len(signature.subject_sha256) == 64
    assert signature.meaning == "approved" and signature.reason == "validated"  # the signer's own reason
    # The sha256 is over the version's files: the manifest of role:sha256 lines.
    import hashlib

    manifest = "".join(f"{a.role}:{a.sha256}\n" for a in version.artifacts.order_by("role"))
    assert signature.subject_sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    # Unsigned aliases move as before; removing production needs a signature too.
    alias_move(
        soft_sensor=version.soft_sensor, name="staging", version=version, user=role_users["modeler"], reason="try"
    )
    with pytest.raises(SignatureRefused):
        alias_delete(soft_sensor=version.soft_sensor, name="production", user=role_users["modeler"], reason="retire")
    assert Alias.objects.filter(name="production").exists()
    alias_delete(
        soft_sensor=version.soft_sensor,
        name="production",
        user=role_users["modeler"],
        reason="retire",
        signature=sign(version),
    )
    assert not Alias.objects.filter(name="production").exists()


def test_signers_need_the_capability(version, role_users, django_user_model):
    # A manager has no sign_records; a user with manage_models only (no sign_records) neither.
    mover = make_user(django_user_model, "mover", None)
    mover.user_permissions.add(Permission.objects.get(codename="manage_models"))
    for user in (role_users["manager"], mover):
        with pytest.raises(SignatureRefused, match="may not sign records"):
            alias_move(
                soft_sensor=version.soft_sensor,
                name="production",
                version=version,
                user=user,
                reason="x",
                signature=sign(version),
            )
    assert not AliasMove.objects.exists()
    assert Signature.objects.filter(outcome=Outcome.REFUSED).count() == 2


def test_the_two_person_rule_is_per_project(version, role_users):
    # Off by default: the uploader may sign. On: the uploader (or trainer) cannot; someone else can.
    policy = SigningPolicy.objects.create(
        project=version.soft_sensor.project, two_person_rule=True, signed_aliases=["validated"]
    )
    assert version.created_by == role_users["modeler"]
    for alias in ("production", "validated"):
        with pytest.raises(SignatureRefused, match="two-person rule"):
            alias_move(
                soft_sensor=version.soft_sensor,
                name=alias,
                version=version,
                user=role_users["modeler"],
                reason="mine",
                signature=sign(version),
            )
    assert not Alias.objects.exists()
    alias_move(
        soft_sensor=version.soft_sensor,
        name="production",
        version=version,
        user=role_users["admin"],
        reason="second person",
        signature=sign(version),
    )
    assert AliasMove.objects.get().signature.signer_username == "test-admin"
    policy.two_person_rule = False
    policy.save()
    alias_move(
        soft_sensor=version.soft_sensor,
        name="validated",
        version=version,
        user=role_users["modeler"],
        reason="allowed now",
        signature=sign(version),
    )


def test_repeated_wrong_passwords_lock_signing_for_a_while(version, role_users):
    for _ in range(MAX_FAILED_PASSWORDS):
        with pytest.raises(SignatureRefused, match="password"):
            alias_move(
                soft_sensor=version.soft_sensor,
                name="production",
                version=version,
                user=role_users["modeler"],
                reason="x",
                signature=sign(version, password="guess"),
            )
    with pytest.raises(SignatureRefused, match="wrong passwords in 15 minutes"):
        alias_move(
            soft_sensor=version.soft_sensor,
            name="production",
            version=version,
            user=role_users["modeler"],
            reason="x",
            signature=sign(version),
        )
    assert not AliasMove.objects.exists()


def test_registration_cannot_set_a_signed_alias(version, role_users):
    from apps.common.errors import ValidationFailed
    from apps.registry.descriptors import parse_descriptor
    from apps.registry.services import ArtifactInput, model_version_register

    before = ModelVersion.objects.count()
    path = version.artifacts.get(role="model").path
    from apps.registry.artifacts import absolute_path

    with pytest.raises(ValidationFailed, match="signed alias"):
        model_version_register(
            project=version.soft_sensor.project,
            descriptor=parse_descriptor({"ml_model_configuration": version.descriptor}),
            files={"model": ArtifactInput(absolute_path(path), version.artifacts.get(role="model").original_name)},
            user=role_users["modeler"],
            alias="production",
        )
    assert ModelVersion.objects.count() == before


def test_a_service_account_signs_over_the_api(version, django_user_model):
    """The API offers the same flow to an account holding exactly the capabilities (no human role)."""
    account = make_user(django_user_model, "release-bot", None, password="bot-password-long")
    account.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_process", "manage_models", "sign_records"])
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(account)}")
    sha256 = client.get(f"{SS}/versions/1/").json()["sha256"]
    body = {
        "version": 1,
        "reason": "release 1",
        "signature": {"password": "bot-password-long", "meaning": "approved", "sha256": sha256},
    }
    wrong = client.post(
        f"{SS}/aliases/production/move/",
        {**body, "signature": {**body["signature"], "password": "nope"}},
        format="json",
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "signature_refused"
    assert not Alias.objects.filter(name="production").exists()
    bad_hash = client.post(
        f"{SS}/aliases/production/move/", {**body, "signature": {**body["signature"], "sha256": "xyz"}}, format="json"
    )
    assert bad_hash.status_code == 400 and "sha256" in bad_hash.json()["error"]["message"]
    moved = client.post(f"{SS}/aliases/production/move/", body, format="json")
    assert moved.status_code == 200, moved.content
    history = client.get(f"{SS}/aliases/").json()["history"]
    assert history[0]["signed_by"] == "release-bot" and history[0]["signed_sha256"] == sha256
    refused = Signature.objects.get(outcome=Outcome.REFUSED)
    assert refused.via == "api" and refused.signer_username == "release-bot"
