"""Bad input to the time-series endpoints, as an attacker or a clumsy client sends it: every case answers
4xx (never 500) within a time bound, and stores nothing.

Bodies that used to cost minutes and hundreds of MiB (a 100 MiB line, a 1 MB gzip of zeros or of newlines)
are also measured for memory: the traced peak of the request stays under ``MEMORY_BOUND``. Time bounds
are the issue's 2 s; the figures on a quiet machine are far below (``benchmarks/bad_input.py``).
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import resolve
from rest_framework.test import APIClient, APIRequestFactory

from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection, SeriesFilter
from tests.conftest import issue_token
from tests.gzip_bombs import gzip_of

pytestmark = pytest.mark.django_db

TIME_BOUND = 2.0
MEMORY_BOUND = 50 * 1024 * 1024
TAGS = "device_id=R1,project_name=penicillin,batch_id=batch_bad,source=sensor,observed_property=temperature"
GOOD_LINE = f"device_obs,{TAGS} value=1.5 1767225600000000000\n"


@pytest.fixture
def writer(role_users) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(role_users['modeler'])}")
    return client


def nothing_stored() -> bool:
    backend = get_backend()
    return not backend.list_series(collection=Collection.RAW, where=SeriesFilter(project_name="penicillin")) and not (
        backend.list_series(collection=Collection.PREDICTIONS, where=SeriesFilter(project_name="penicillin"))
    )


def measured(
    client: APIClient, method: str, path: str, *, memory: bool = False, **kwargs: Any
) -> tuple[Any, float, int]:
    """(response, seconds, traced peak bytes or 0) of one request, timing the server side only: the request
    (with its body) is built first, then handed to the view the URL resolves to."""
    factory = APIRequestFactory()
    request = getattr(factory, method)(path, **kwargs)
    request.META.update(client._credentials)
    match = resolve(request.path_info)
    if memory:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        response = match.func(request, *match.args, **match.kwargs)
        response.render()
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if memory else 0
        if memory:
            tracemalloc.stop()
    response.json = lambda: json.loads(response.content)
    return response, elapsed, peak


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {
        # 256 MiB expanded each, about 256 KB compressed (benchmarks/bad_input.py sends the 1 GiB ones).
        "zeros": gzip_of(b"\0" * (1 << 20), 256),
        "newlines": gzip_of(b"\n" * (1 << 20), 256),
        "comments": gzip_of(b"#\n" * (1 << 19), 256),
    }


# --- line protocol ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/api/v2/write?bucket=stamm_raw", "/write?db=stamm_raw"])
@pytest.mark.parametrize(
    ("case", "status", "fragment"),
    [
        ("long_line", 400, "lines are limited to 65536 bytes"),
        ("zeros", 400, "lines are limited to 65536 bytes"),
        ("newlines", 400, "blank or comment lines"),
        ("comments", 400, "blank or comment lines"),
    ],
)
def test_line_protocol_bombs_are_refused_fast_and_small(writer, bombs, url, case, status, fragment):
    if case == "long_line":
        body, extra = b"x" * (100 << 20), {}  # one 100 MiB line
    else:
        body, extra = bombs[case], {"HTTP_CONTENT_ENCODING": "gzip"}
    response, seconds, peak = measured(writer, "post", url, data=body, content_type="text/plain", memory=True, **extra)
    assert response.status_code == status, response.content
    assert fragment in response.json()["message"]
    assert seconds < TIME_BOUND, f"{case}: {seconds:.2f} s"
    assert peak < MEMORY_BOUND + len(body), f"{case}: {peak / 2**20:.0f} MiB traced"
    assert nothing_stored()


def test_a_gzip_bomb_of_valid_size_lines_stops_at_the_limit(writer, settings):
    """Lines that parse, inflating past the limit: 413 as soon as the limit is crossed."""
    settings.TSDB_LINE_PROTOCOL_MAX_BYTES = 8 * 1024 * 1024
    body = gzip_of(GOOD_LINE.encode() * 10_000, 20)  # about 24 MiB expanded
    response, seconds, _ = measured(
        writer, "post", "/api/v2/write?bucket=stamm_raw", data=body, content_type="text/plain",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 413 and "after decompression" in response.json()["message"]
    assert seconds < TIME_BOUND
    assert nothing_stored()


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (GOOD_LINE.replace("batch_bad", "batch\0bad"), "batch_id must not contain a NUL character"),
        (GOOD_LINE.replace("R1", "R\0"), "device_id must not contain a NUL character"),
    ],
)
def test_line_protocol_nul_in_a_tag_is_400_with_the_line(writer, line, fragment):
    response = writer.post("/api/v2/write?bucket=stamm_raw", data=(GOOD_LINE + line).encode(),
                           content_type="text/plain")
    assert response.status_code == 400, response.content
    assert response.json()["line"] == 2 and fragment in response.json()["message"]
    assert nothing_stored()


def test_line_protocol_nul_in_a_string_field_is_400(writer):
    tags = TAGS.replace("source=sensor", "source=soft_sensor") + ",model_id=m1,version=1"
    line = f'device_obs,{tags} value=1.5,validity="ok\0" 1767225600000000000\n'
    response = writer.post("/api/v2/write?bucket=stamm_predictions", data=line.encode(), content_type="text/plain")
    assert response.status_code == 400 and "NUL" in response.json()["message"] and response.json()["line"] == 1
    assert nothing_stored()


def test_line_protocol_nul_in_metadata_is_400(writer):
    line = 'device_obs,device_id=R1,project_name=penicillin,observed_property=t unit="K\0" 1\n'
    response = writer.post("/api/v2/write?bucket=stamm_metadata", data=line.encode(), content_type="text/plain")
    assert response.status_code == 400 and "NUL" in response.json()["message"]


# --- JSON ------------------------------------------------------------------------------------------
def points_body(**overrides: Any) -> dict[str, Any]:
    point = {"source": "sensor", "observed_property": "temperature", "time": "2026-01-01T00:00:00Z", "value": 1.0}
    point.update(overrides)
    return {"collection": "raw", "project_name": "penicillin", "device_id": "R1", "batch_id": "b1", "points": [point]}


@pytest.mark.parametrize("field", ["batch_id", "observed_property", "source"])
def test_json_nul_in_a_tag_is_400(writer, field):
    response = writer.post("/api/v1/tsdb/points", points_body(**{field: "x\0y"}), format="json")
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["error"]["message"] and field in response.json()["error"]["message"]
    assert nothing_stored()


def test_json_nul_in_metadata_is_400(writer):
    body = {"items": [{"project_name": "penicillin", "device_id": "R1", "observed_property": "t", "unit": "K\0"}]}
    response = writer.put("/api/v1/tsdb/metadata", body, format="json")
    assert response.status_code == 400 and "unit" in response.json()["error"]["message"]


def test_json_body_over_the_limit_is_413_unread(writer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = b'{"points": [' + b"0," * (1024 * 1024) + b"0]}"
    response, seconds, _ = measured(writer, "post", "/api/v1/tsdb/points", data=body, content_type="application/json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert seconds < TIME_BOUND
    assert nothing_stored()


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"a":' * 100_000, b"{not json", b"\xff\xfe"])
def test_malformed_or_deeply_nested_json_is_400(writer, body):
    response, seconds, _ = measured(writer, "post", "/api/v1/tsdb/points", data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "JSON parse error" in response.json()["error"]["message"]
    assert seconds < TIME_BOUND


# --- CSV -------------------------------------------------------------------------------------------
def csv_upload(client: APIClient, content: bytes, **fields: str):
    data = {"file": SimpleUploadedFile("batch.csv", content, content_type="text/csv"),
            "project_name": "penicillin", "device_id": "R1", "batch_id": "b1", "start": "2026-01-01T00:00:00Z"}
    data.update(fields)
    return client.post("/api/v1/tsdb/import", data, format="multipart")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"time,temperature,ph\n0,298,6.5\n1,299\n2,300,6.6\n", "line 3 has 2 cells, fewer than the header's 3"),
        (b"time,temperature,ph\n0,298,6.5\n\n1,299,6.4,7\n", "line 4 has 4 cells, more than the header's 3"),
        (b'time,"temp, K",ph\n0,298,6.5\n1,"299"\n', "line 3 has 2 cells, fewer than the header's 3"),
        (b"time,temp\0erature,ph\n0,298,6.5\n", "line 1: the file contains a NUL character"),
        (b"time,temperature\n0,29\x008\n", "line 2: the file contains a NUL character"),
        (b"time,temperature\n" + b"1" * (2 * 1024 * 1024), "line 2 is 2097152 characters long"),
        (b"x" * (3 * 1024 * 1024), "line 1 is 3145728 characters long"),
    ],
)
def test_csv_bad_shapes_are_400_with_the_line(writer, content, fragment):
    started = time.perf_counter()
    response = csv_upload(writer, content)
    seconds = time.perf_counter() - started
    assert response.status_code == 400, response.content
    assert fragment in response.json()["error"]["message"]
    assert seconds < TIME_BOUND
    assert nothing_stored()


def test_csv_upload_over_the_limit_is_413_before_it_is_read(writer, monkeypatch):
    from apps.tsdb.apis import CsvImportApi

    monkeypatch.setattr(CsvImportApi, "max_upload_bytes", 64 * 1024)
    response = csv_upload(writer, b"time,temperature\n" + b"0,298\n" * 20_000)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert nothing_stored()


# --- reads ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_age", ["1e308", "inf", "nan", "-1", "400000000"])
def test_snapshot_max_age_out_of_range_is_400(writer, max_age):
    response = writer.get(
        "/api/v1/tsdb/snapshots",
        {"project_name": "penicillin", "device_id": "R1", "batch_id": "b1", "variables": "t", "max_age": max_age},
    )
    assert response.status_code == 400, response.content
    assert "max_age" in response.json()["error"]["message"]


def test_plain_gzip_module_round_trip_still_works(writer):
    """The bounds do not get in the way of an ordinary gzip body."""
    response = writer.post("/api/v2/write?bucket=stamm_raw", data=gzip.compress(GOOD_LINE.encode() * 100),
                           content_type="text/plain", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 204
