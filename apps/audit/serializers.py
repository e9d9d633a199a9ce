"""The electronic-signature part of a request body, shared by every API operation that needs one."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .services import Meaning, SignatureInput


class SignatureInputSerializer(serializers.Serializer):
    """``{"password": …, "meaning": "approved", "sha256": …, "reason": …}``: the signer's password again, the
    meaning, the sha256 of what is signed (as the server showed it) and the reason (defaults to the
    operation's reason)."""

    class Meta:
        ref_name = "SignatureInput"

    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})
    meaning = serializers.ChoiceField(choices=Meaning.choices)
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", help_text="sha256 of the signed version (hex)")
    reason = serializers.CharField(required=False, allow_blank=True, default="")


def signature_input(data: dict[str, Any] | None) -> SignatureInput | None:
    """The validated nested ``signature`` object as the services take it (None when absent)."""
    if not data:
        return None
    return SignatureInput(password=data["password"], meaning=data["meaning"], reason=data.get("reason", ""),
                          sha256=data["sha256"].lower())
