"""The one rule for fields a service does not know: refused by name, before anything is written."""

from __future__ import annotations

import pytest

from apps.common.errors import ValidationFailed, reject_unknown_fields


def test_unknown_fields_are_named_in_the_message_and_the_details():
    with pytest.raises(ValidationFailed) as caught:
        reject_unknown_fields({"name": 1, "colour": 2, "alias": 3}, ["name", "alias"], what="deployment")
    assert caught.value.message == "Unknown deployment fields: colour."
    assert caught.value.details == {"colour": "unknown field"}


def test_nested_fields_carry_their_prefix_and_known_fields_pass():
    with pytest.raises(ValidationFailed) as caught:
        reject_unknown_fields({"alpha": 0.8, "zeta": 1, "beta": 2}, ["alpha"], what="bias", prefix="bias.")
    assert caught.value.message == "Unknown bias fields: beta, zeta."
    assert caught.value.details == {"bias.beta": "unknown field", "bias.zeta": "unknown field"}
    reject_unknown_fields({"alpha": 0.8}, ["alpha", "delay"], what="bias")  # no error


@pytest.mark.django_db
def test_a_service_refuses_a_misspelt_field_and_writes_nothing():
    from apps.orchestrator.models import Deployment
    from apps.orchestrator.services import deployment_create

    with pytest.raises(ValidationFailed) as caught:
        deployment_create(name="typo", max_input_age_secs=60)
    assert caught.value.details == {"max_input_age_secs": "unknown field"}
    assert not Deployment.objects.exists()
