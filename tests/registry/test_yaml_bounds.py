"""Every YAML the platform reads goes through ``load_yaml``: size-limited, alias expansion and nesting
bounded, answered within a second (a 342-byte "billion laughs" used to keep a web worker busy for
minutes and grow it by gigabytes)."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry.descriptors import DescriptorError, parse_descriptor_yaml
from apps.registry.yaml_io import MAX_YAML_BYTES, load_yaml

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMBS = {
    "aliases": (BILLION_LAUGHS, "expands to more than"),
    "flow nesting": ("[" * 100_000, "nested deeper than"),
    "mapping nesting": ("{a: " * 10_000, "nested deeper than"),
    "block nesting": ("".join(" " * i + "- \n" for i in range(0, 400, 2)), "nested deeper than"),
    "size": ("x: " + "y" * MAX_YAML_BYTES, f"at most {MAX_YAML_BYTES}"),
    "python object": ("!!python/object/apply:os.system ['id']", "could not determine a constructor"),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_hostile_yaml_is_refused_within_a_second(case):
    text, fragment = BOMBS[case]
    started = time.perf_counter()
    with pytest.raises(DescriptorError) as error:
        load_yaml(text)
    assert time.perf_counter() - started < 1.0
    assert fragment in str(error.value)


def test_ordinary_anchors_and_aliases_still_load():
    data = load_yaml("base: &base {units: g/L, lag: 0}\nfeatures:\n  - {<<: *base, name: pH}\n  - *base\n")
    assert data["features"][1] == {"units": "g/L", "lag": 0} and data["features"][0]["name"] == "pH"


def test_a_descriptor_bomb_is_a_descriptor_error():
    with pytest.raises(DescriptorError):
        parse_descriptor_yaml(BILLION_LAUGHS)


@pytest.mark.django_db
def test_a_project_info_bomb_uploaded_over_http_is_400_within_a_second(api_client_for):
    client = api_client_for("modeler")
    client.get("/api/v1/me/")  # the first request of a process imports every view: not what is timed
    upload = SimpleUploadedFile("project_info.yaml", BILLION_LAUGHS.encode(), content_type="application/yaml")
    started = time.perf_counter()
    response = client.post("/api/v1/registry/projects/create/", {"project_info": upload}, format="multipart")
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 400 and "expands to more than" in response.json()["error"]["message"]
