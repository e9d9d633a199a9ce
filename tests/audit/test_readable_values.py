"""The trail's pages show recorded mappings and lists as words, never as raw ``{}`` (the export keeps them)."""

from __future__ import annotations

import pytest

from apps.audit.templatetags.audit_tags import readable_value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("{}", "(none)"),
        ({}, "(none)"),
        ("[]", "(none)"),
        ("{'temperature': 'T_reactor'}", "temperature: T_reactor"),
        ('{"a": 1, "b": {"c": 2}}', "a: 1; b: c: 2"),
        (["batch_92", "batch_93"], "batch_92, batch_93"),
        ("{not python", "{not python"),
        ("plain text", "plain text"),
        (3600, 3600),
    ],
)
def test_recorded_values_read_as_words(value, shown):
    assert readable_value(value) == shown
