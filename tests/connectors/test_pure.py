"""The framework-free rules: mapping patterns and templates, payloads, quality codes, sealed secrets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.connectors import mapping
from apps.connectors.mapping import MappingError, Pattern, PayloadError, payload_parse
from apps.connectors.quality import STATUS_CODES, Quality, estimate_quality


@pytest.mark.parametrize(
    ("pattern", "path", "captures"),
    [
        ("plant/{device_id}/{observed_property}", "plant/R1/ph", {"device_id": "R1", "observed_property": "ph"}),
        ("plant/+/{observed_property}", "plant/R1/ph", {"observed_property": "ph"}),
        ("plant/#", "plant/R1/ph/raw", {}),
        ("plant/#", "plant", {}),
        ("plant/{device_id}/#", "plant/R2/a/b", {"device_id": "R2"}),
        ("plant/{device_id}/ph", "plant/R1/temperature", None),
        ("plant/{device_id}", "plant/R1/ph", None),
        ("plant/{device_id}/ph", "plant//ph", None),
        ("plant/{device_id}/ph", "other/R1/ph", None),
    ],
)
def test_patterns_match_and_capture(pattern, path, captures):
    assert Pattern.parse(pattern).match(path.split("/")) == captures


def test_browse_names_match_with_or_without_their_namespace():
    pattern = Pattern.parse("2:Plant/{device_id}/Temp")
    assert pattern.match(["2:Plant", "3:R1", "2:Temp"], browse_names=True) == {"device_id": "R1"}
    assert pattern.match(["3:Plant", "3:R1", "2:Temp"], browse_names=True) is None
    assert Pattern.parse("Plant/{d}").match(["5:Plant", "5:R9"], browse_names=True) == {"d": "R9"}


def test_the_subscription_filter_replaces_placeholders_with_plus():
    assert Pattern.parse("site/{device_id}/+/{observed_property}").subscription() == "site/+/+/+"
    assert Pattern.parse("ns=2;s=R1.TT101").is_node_id


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("a/#/b", "'#' must be the last"),
        ("a/b#", "whole segment"),
        ("a/x{device_id}", "placeholder must fill a whole segment"),
        ("a/{d}/{d}", "captured twice"),
        ("a/" + "b" * 600, "longer than"),
    ],
)
def test_bad_patterns_say_what_is_wrong(pattern, message):
    with pytest.raises(MappingError, match=message):
        Pattern.parse(pattern)


def test_rule_check_names_templates_using_uncaptured_placeholders():
    templates = {
        "project_name": "p",
        "device_id": "{unit}",
        "batch_id": "b",
        "source": "sensor",
        "observed_property": "",
    }
    problems = mapping.rule_check("plant/{device_id}/x", templates)
    assert problems == {
        "device_id": "uses {unit}, which the pattern does not capture",
        "observed_property": "must not be empty",
    }
    assert mapping.render("{site}-{unit}", {"site": "A", "unit": "7"}) == "A-7"


@pytest.mark.parametrize(
    ("payload", "value", "time", "quality"),
    [
        (b"12.5", 12.5, None, "good"),
        (b" -3 ", -3.0, None, "good"),
        (b'{"value": 1.5, "timestamp": "2026-05-01T12:00:00Z"}', 1.5, datetime(2026, 5, 1, 12, tzinfo=UTC), "good"),
        (b'{"value": 2, "time": 1777636800}', 2.0, datetime(2026, 5, 1, 12, tzinfo=UTC), "good"),
        (b'{"value": 2, "quality": "Bad_SensorFailure"}', 2.0, None, "bad"),
        (b'{"value": null, "quality": 1083179008}', None, None, "uncertain"),
        (b'{"value": 2, "quality": "GOOD"}', 2.0, None, "good"),
    ],
)
def test_payloads_are_read(payload, value, time, quality):
    reading = payload_parse(payload)
    assert (reading.value, reading.time, reading.quality) == (value, time, quality)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"twelve", "neither a number nor JSON"),
        (b"NaN", "must be finite"),
        (b'"12"', "payload must be a number"),
        (b"[1, 2]", "payload must be a number"),
        (b'{"v": 1}', "no 'value'"),
        (b'{"value": true}', "value must be a number"),
        (b'{"value": null}', "value must be a number"),
        (b'{"value": 1, "timestamp": "2026-05-01T12:00:00"}', "no time zone"),
        (b'{"value": 1, "timestamp": -5}', "between 1970 and 2262"),
        (b'{"value": 1, "quality": "fine"}', "not good, uncertain, bad"),
        (b"1" * (64 * 1024 + 1), "larger than"),
    ],
)
def test_bad_payloads_say_what_is_wrong(payload, message):
    with pytest.raises(PayloadError, match=message):
        payload_parse(payload)


def test_status_codes_are_the_opc_ua_ones():
    from asyncua import ua

    for name, code in STATUS_CODES.items():
        assert getattr(ua.StatusCodes, name) == code
        assert mapping.quality_of_code(code) == (
            "good" if name == "Good" else name[:3].lower().replace("unc", "uncertain")
        )


def test_quality_rules_worst_first_with_every_reason():
    assert estimate_quality(validity="ok").quality is Quality.GOOD
    assert estimate_quality(validity="").status_name == "Good"
    out = estimate_quality(validity="out_of_range", stale_inputs=["ph"], drift_alerts=2)
    assert (out.quality, out.status_name) == (Quality.UNCERTAIN, "UncertainEngineeringUnitsExceeded")
    assert out.reasons == ("inputs outside the envelope (out_of_range)", "stale inputs: ph", "drift alert open (2)")
    assert estimate_quality(validity="ok", drift_alerts=1).status_name == "UncertainSensorNotAccurate"
    assert estimate_quality(validity="ok", stale_inputs=["a", "b"]).reasons == ("stale inputs: a, b",)
    bad = estimate_quality(validity="out_of_range", runtime_error="boom")
    assert (bad.quality, bad.status_code) == (Quality.BAD, 0x80020000)
    assert bad.reasons[0] == "runtime failure: boom"


def test_secrets_are_sealed_and_unreadable_with_another_key(settings):
    from apps.connectors.credentials import CredentialsUnreadable, secret_open, secret_seal

    sealed = secret_seal("s3cret-pass")
    assert "s3cret" not in sealed and secret_open(sealed) == "s3cret-pass" and secret_seal("") == ""
    settings.STAMM_CONNECTORS_SECRET_KEY = "another key material"
    with pytest.raises(CredentialsUnreadable, match="enter it again"):
        secret_open(sealed)
