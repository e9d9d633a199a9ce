"""The tsdb HTTP API through DRF's APIClient: shapes, role matrix, bad input, atomicity, the signal."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.tsdb.backends import get_backend
from apps.tsdb.signals import points_committed
from apps.tsdb.types import Collection, GroupKey, SeriesFilter
from tests.conftest import CALLERS

from .contract import T0, raw_batch, seconds

pytestmark = pytest.mark.django_db

BASE = "/api/v1/tsdb"
GROUP = {"project_name": "penicillin", "device_id": "R1", "batch_id": "batch_91"}
VIEWERS = {"operator", "modeler", "manager", "admin"}
INGESTERS = {"modeler", "admin"}


def iso(seconds_after: float) -> str:
    return (T0 + timedelta(seconds=seconds_after)).isoformat().replace("+00:00", "Z")


def row_payload(**overrides):
    body = {
        "collection": "raw",
        **GROUP,
        "points": [
            {"source": "sensor", "observed_property": "temperature", "time": iso(0), "value": 298.1},
            {"source": "sensor", "observed_property": "temperature", "time": iso(20), "value": 298.2},
            {"source": "actuator", "observed_property": "sugar_feed_rate", "time": iso(0), "value": 8},
        ],
    }
    body.update(overrides)
    return body


def stored_points(**where) -> int:
    infos = get_backend().list_series(collection=Collection.RAW, where=SeriesFilter(**where))
    return sum(i.point_count for i in infos)


def seed(n: int = 100):
    group = GroupKey(**GROUP)
    t = seconds(*range(0, n * 20, 20))
    get_backend().write(
        raw_batch(
            group, {"temperature": (t, 298 + np.sin(np.arange(n) / 10)), "ph": (t[::2], np.full(len(t[::2]), 6.5))}
        )
    )
    return t


# --- role matrix ---------------------------------------------------------------------------------
def expected(caller: str, allowed: set[str], ok: int) -> int:
    if caller == "anonymous":
        return 401
    return ok if caller in allowed else 403


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "path",
    [
        "/series?project_name=penicillin",
        f"/series/data?project_name=penicillin&device_id=R1&batch_id=batch_91&source=sensor"
        f"&observed_property=temperature&start={iso(0)}&end={iso(3600)}",
        "/groups",
        "/latest?project_name=penicillin",
        "/snapshots?project_name=penicillin&device_id=R1&batch_id=batch_91&variables=temperature&max_age=60",
        "/metadata?project_name=penicillin",
    ],
)
def test_reads_need_view_process(api_client_for, caller, path):
    response = api_client_for(caller).get(BASE + path)
    assert response.status_code == expected(caller, VIEWERS, 200), response.content


@pytest.mark.parametrize("caller", CALLERS)
def test_points_write_needs_ingest_data(api_client_for, caller):
    response = api_client_for(caller).post(f"{BASE}/points", row_payload(), format="json")
    assert response.status_code == expected(caller, INGESTERS, 201), response.content
    assert stored_points(batch_id="batch_91") == (3 if caller in INGESTERS else 0)


@pytest.mark.parametrize("caller", CALLERS)
def test_csv_import_needs_ingest_data(api_client_for, caller):
    upload = SimpleUploadedFile("b.csv", b"time,temperature\n0.2,298.1\n0.4,298.2\n", content_type="text/csv")
    response = api_client_for(caller).post(
        f"{BASE}/import", {"file": upload, **GROUP, "start": T0.isoformat()}, format="multipart"
    )
    assert response.status_code == expected(caller, INGESTERS, 201), response.content


@pytest.mark.parametrize("caller", CALLERS)
def test_delete_needs_administer(api_client_for, caller):
    seed(10)
    response = api_client_for(caller).delete(f"{BASE}/points?project_name=penicillin&device_id=R1&batch_id=batch_91")
    assert response.status_code == expected(caller, {"admin"}, 200), response.content
    assert stored_points(batch_id="batch_91") == (0 if caller == "admin" else 15)


@pytest.mark.parametrize("caller", CALLERS)
def test_metadata_store_needs_ingest_data(api_client_for, caller):
    body = {
        "items": [{"project_name": "penicillin", "device_id": "R1", "observed_property": "temperature", "unit": "K"}]
    }
    response = api_client_for(caller).put(f"{BASE}/metadata", body, format="json")
    assert response.status_code == expected(caller, INGESTERS, 200), response.content


# --- ingest --------------------------------------------------------------------------------------
def test_row_form_writes_and_reports(api_client_for):
    response = api_client_for("modeler").post(f"{BASE}/points", row_payload(), format="json")
    assert response.status_code == 201
    assert response.json() == {"collection": "raw", "points": 3, "series": 2, "groups": [GROUP]}
    assert stored_points(observed_property="temperature") == 2


def test_columnar_form_skips_nulls(api_client_for):
    body = {
        "collection": "raw",
        **GROUP,
        "times": [iso(0), iso(20), iso(40)],
        "columns": [
            {"source": "sensor", "observed_property": "temperature", "values": [1.0, 2.0, 3.0]},
            {"source": "lab", "observed_property": "penicillin_concentration", "values": [None, 0.5, None]},
        ],
    }
    response = api_client_for("modeler").post(f"{BASE}/points", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["points"] == 4
    assert stored_points(source="lab") == 1


def test_numeric_times_with_precision_and_predictions(api_client_for):
    base_ms = int(T0.timestamp() * 1000)
    body = {
        "collection": "predictions",
        "precision": "ms",
        **GROUP,
        "model_id": "0001_[python]_penicillin_rf",
        "version": "V.1.0",
        "points": [
            {
                "source": "soft_sensor",
                "observed_property": "penicillin_concentration",
                "time": base_ms,
                "value": 1.2,
                "validity": "ok",
                "corrected_value": 1.3,
            },
        ],
    }
    response = api_client_for("admin").post(f"{BASE}/points", body, format="json")
    assert response.status_code == 201, response.content
    series = get_backend().list_series(collection=Collection.PREDICTIONS, where=SeriesFilter(batch_id="batch_91"))
    assert [s.series.model_id for s in series] == ["0001_[python]_penicillin_rf"]
    assert series[0].first_time == T0


def test_duplicates_last_wins_and_out_of_order_accepted(api_client_for):
    client = api_client_for("modeler")
    points = [
        {"source": "sensor", "observed_property": "temperature", "time": iso(40), "value": 3.0},
        {"source": "sensor", "observed_property": "temperature", "time": iso(0), "value": 1.0},
        {"source": "sensor", "observed_property": "temperature", "time": iso(0), "value": 1.5},
    ]
    assert client.post(f"{BASE}/points", row_payload(points=points), format="json").status_code == 201
    data = client.get(
        f"{BASE}/series/data",
        {**GROUP, "source": "sensor", "observed_property": "temperature", "start": iso(0), "end": iso(60)},
    ).json()
    assert data["values"] == [1.5, 3.0]
    assert data["times"] == [iso(0), iso(40)]


def test_points_committed_signal_names_groups_after_commit(api_client_for, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    points_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = api_client_for("modeler").post(f"{BASE}/points", row_payload(), format="json")
            assert response.status_code == 201
            assert received == []  # not before commit
        assert len(callbacks) == 1
        assert received[0]["groups"] == frozenset({GroupKey(**GROUP)})
        assert received[0]["points"] == 3 and received[0]["collection"] is Collection.RAW
        # A rejected request commits nothing and signals nothing.
        received.clear()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            bad = row_payload(points=[{"source": "sensor", "observed_property": "x", "time": iso(0), "value": "hot"}])
            assert api_client_for("modeler").post(f"{BASE}/points", bad, format="json").status_code == 400
        assert callbacks == [] and received == []
    finally:
        points_committed.disconnect(receiver)


BAD_POINTS = [
    ({"value": "hot"}, "value"),
    ({"value": True}, "value"),
    ({"value": None}, "value"),
    ({"time": "2026-01-01T00:00:00"}, "time"),  # no zone
    ({"time": 1767225600}, "time"),  # numeric without precision
    ({"time": "yesterday"}, "time"),
    ({"time": "1969-12-31T23:59:59Z"}, "time"),
    ({"source": "oracle"}, "source"),
    ({"observed_property": ""}, "observed_property"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), BAD_POINTS)
def test_bad_point_rejects_whole_request(api_client_for, change, field):
    body = row_payload()
    body["points"][1] = {**body["points"][1], **change}
    response = api_client_for("modeler").post(f"{BASE}/points", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert any(d.get("field") == field for d in error["details"]), error
    if field != "source":  # source is checked per series after parsing
        assert any(d.get("point") == 1 for d in error["details"]), error
    assert field in error["message"]
    assert stored_points(batch_id="batch_91") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"collection": "raw", **GROUP}, "body"),
        (row_payload(columns=[]), "body"),
        (row_payload(points=[]), "points"),
        (row_payload(collection="metadata"), "collection"),
        (row_payload(precision="days"), "precision"),
        (row_payload(device_id=7), "device_id"),
        (
            {**GROUP, "times": [iso(0)], "columns": [{"source": "sensor", "observed_property": "t", "values": [1, 2]}]},
            "values",
        ),
        (
            {
                **GROUP,
                "times": [iso(0), "x"],
                "columns": [{"source": "sensor", "observed_property": "t", "values": [1, 2]}],
            },
            "times",
        ),
        (
            {
                **GROUP,
                "collection": "predictions",
                "points": [{"source": "soft_sensor", "observed_property": "p", "time": iso(0), "value": 1}],
            },
            "model_id",
        ),
    ],
)
def test_bad_payloads(api_client_for, body, field):
    response = api_client_for("modeler").post(f"{BASE}/points", body, format="json")
    assert response.status_code == 400, response.content
    details = response.json()["error"].get("details", [])
    assert any(d.get("field") == field for d in details), response.json()


def test_nan_literal_and_wrong_content_type_are_refused(api_client_for):
    client = api_client_for("modeler")
    body = '{"project_name": "p", "points": [{"value": NaN}]}'
    assert client.post(f"{BASE}/points", body, content_type="application/json").status_code == 400
    assert client.post(f"{BASE}/points", "x", content_type="text/plain").status_code == 415
    assert client.post(f"{BASE}/points", "{not json", content_type="application/json").status_code == 400
    assert stored_points() == 0


# --- CSV import ----------------------------------------------------------------------------------
def test_import_indpensim_batch(api_client_for, indpensim_dir):
    path = indpensim_dir / "batch_92.csv"
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="text/csv")
    response = api_client_for("modeler").post(
        f"{BASE}/import",
        {"file": upload, **GROUP, "batch_id": "batch_92", "start": "2026-01-01T00:00:00Z"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    rows = sum(1 for _ in path.open()) - 1
    assert body["rows"] == rows
    assert body["first_time"] == "2026-01-01T00:12:00Z"  # first row at 0.2 h
    mapping = {c["column"]: (c["observed_property"], c["source"]) for c in body["columns"]}
    assert mapping["offline_penicillin_concentration"] == ("penicillin_concentration", "lab")
    assert mapping["heating/cooling_water_flow_rate"] == ("heating_cooling_water_flow_rate", "actuator")
    assert mapping["pH"] == ("ph", "sensor")
    assert body["skipped"] == [{"column": "experiment_ID", "reason": "experiment identifier, not a variable"}]
    lab = get_backend().list_series(collection=Collection.RAW, where=SeriesFilter(batch_id="batch_92", source="lab"))
    assert {i.series.observed_property for i in lab} == {
        "penicillin_concentration",
        "biomass_concentration",
        "paa_concentration",
        "nh3_concentration",
    }
    assert all(5 < i.point_count < 40 for i in lab)  # only where filled
    assert body["points"] == stored_points(batch_id="batch_92")
    temp = get_backend().list_series(
        collection=Collection.RAW, where=SeriesFilter(batch_id="batch_92", observed_property="temperature")
    )
    assert temp[0].point_count == rows


@pytest.mark.parametrize(
    ("content", "extra", "fragment"),
    [
        (b"time,temperature\n0.2,298\n0.4,hot\n", {}, "row 3, column temperature"),
        (b"time,temperature\n0.2,298\n0.4,inf\n", {}, "row 3, column temperature"),
        (b"time,temperature\n0.2,298\n,299\n", {}, "row 3, column time"),
        (b"time,temperature,temperature\n0.2,1,2\n", {}, "duplicate column"),
        (b"when,temperature\n0.2,1\n", {}, "no time column"),
        (b"", {}, "empty"),
        (b"time,temperature\n", {}, "no rows"),
        ("time,temp\u00e9rature\n0.2,1\n".encode("latin-1"), {}, "UTF-8"),
        (b"time,temperature\n0.2,298\n", {"start": None}, "start is required"),
        (b"timestamp,temperature\n2026-01-01T00:00:00Z,298\n", {}, "start must not be given"),
    ],
)
def test_import_bad_files_write_nothing(api_client_for, content, extra, fragment):
    data = {"file": SimpleUploadedFile("b.csv", content, content_type="text/csv"), **GROUP, "start": T0.isoformat()}
    data.update(extra)
    data = {k: v for k, v in data.items() if v is not None}
    response = api_client_for("modeler").post(f"{BASE}/import", data, format="multipart")
    assert response.status_code == 400, response.content
    assert fragment in response.json()["error"]["message"], response.json()
    assert stored_points() == 0


def test_import_requires_fields(api_client_for):
    response = api_client_for("modeler").post(f"{BASE}/import", {"project_name": "p"}, format="multipart")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {"file", "device_id", "batch_id"} <= set(details)


def test_import_timestamps(api_client_for):
    content = (
        b"timestamp,temperature,offline_biomass_concentration\n"
        b"2026-01-01T00:00:00Z,298,\n2026-01-01T00:00:20Z,299,3.5\n"
    )
    upload = SimpleUploadedFile("b.csv", content, content_type="text/csv")
    response = api_client_for("modeler").post(f"{BASE}/import", {"file": upload, **GROUP}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["points"] == 3 and response.json()["empty_cells"] == 1


# --- reads ---------------------------------------------------------------------------------------
def test_series_list_filters_and_paginates(api_client_for):
    seed(10)
    client = api_client_for("operator")
    body = client.get(f"{BASE}/series", {"project_name": "penicillin", "page_size": 1}).json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]
    only = client.get(f"{BASE}/series", {"observed_property": "ph"}).json()["results"]
    assert [(r["observed_property"], r["point_count"]) for r in only] == [("ph", 5)]
    assert only[0]["first_time"] == "2026-01-01T00:00:00Z"


def test_series_data_downsampled(api_client_for):
    t = seed(300)
    client = api_client_for("operator")
    params = {**GROUP, "source": "sensor", "observed_property": "temperature", "start": iso(0), "end": iso(6000)}
    for method in ("mean", "minmax", "lttb"):
        body = client.get(f"{BASE}/series/data", {**params, "max_points": 30, "method": method}).json()
        assert body["downsampled"] == method and body["total_points"] == len(t)
        assert 2 <= len(body["values"]) <= 30 and len(body["times"]) == len(body["values"])
    raw = client.get(f"{BASE}/series/data", {**params, "max_points": 1000}).json()
    assert raw["downsampled"] is None and len(raw["values"]) == 300


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": None}, "start"),
        ({"end": "2025-01-01T00:00:00Z"}, "end"),
        ({"max_points": 0}, "max_points"),
        ({"max_points": 10**6}, "max_points"),
        ({"method": "median"}, "method"),
        ({"collection": "metadata"}, "collection"),
        ({"start": "soon"}, "start"),
    ],
)
def test_series_data_bad_params(api_client_for, change, field):
    params = {
        **GROUP,
        "source": "sensor",
        "observed_property": "temperature",
        "start": iso(0),
        "end": iso(60),
        **change,
    }
    params = {k: v for k, v in params.items() if v is not None}
    response = api_client_for("operator").get(f"{BASE}/series/data", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_groups_latest_snapshots_metadata(api_client_for):
    seed(10)
    client = api_client_for("operator")
    groups = client.get(f"{BASE}/groups", {"project_name": "penicillin"}).json()["results"]
    assert groups == [
        {
            **GROUP,
            "first_time": "2026-01-01T00:00:00Z",
            "last_time": "2026-01-01T00:03:00Z",
            "point_count": 15,
            "variables": ["ph", "temperature"],
        }
    ]
    latest = client.get(f"{BASE}/latest", {"project_name": "penicillin"}).json()["results"]
    assert {r["observed_property"]: r["time"] for r in latest} == {
        "ph": "2026-01-01T00:02:40Z",
        "temperature": "2026-01-01T00:03:00Z",
    }
    snaps = client.get(
        f"{BASE}/snapshots", {**GROUP, "variables": "temperature,ph", "max_age": 15, "after": iso(100)}
    ).json()
    assert [r["time"] for r in snaps["rows"]] == [iso(120), iso(140), iso(160), iso(180)]
    assert [r["complete"] for r in snaps["rows"]] == [True, False, True, False]
    assert snaps["rows"][1]["reason"] == "stale: ph (age 20 s)" and snaps["rows"][1]["values"][1] is None
    bad = client.get(f"{BASE}/snapshots", {**GROUP, "variables": "a,a", "max_age": 15})
    assert bad.status_code == 400 and "variables" in bad.json()["error"]["details"]
    bad = client.get(f"{BASE}/snapshots", {**GROUP, "variables": "a", "max_age": -1})
    assert bad.status_code == 400 and "max_age" in bad.json()["error"]["details"]
    put = api_client_for("admin").put(
        f"{BASE}/metadata",
        {
            "items": [
                {
                    "project_name": "penicillin",
                    "device_id": "R1",
                    "observed_property": "temperature",
                    "unit": "K",
                    "display_name": "Temperature",
                    "decimals": 1,
                }
            ]
        },
        format="json",
    )
    assert put.json() == {"stored": 1}
    meta = client.get(f"{BASE}/metadata", {"project_name": "penicillin"}).json()
    assert meta == [
        {
            "project_name": "penicillin",
            "device_id": "R1",
            "observed_property": "temperature",
            "unit": "K",
            "display_name": "Temperature",
            "decimals": 1,
        }
    ]
    bad = api_client_for("admin").put(f"{BASE}/metadata", {"items": [{"project_name": "p"}]}, format="json")
    assert bad.status_code == 400


def test_delete_time_range(api_client_for):
    seed(10)
    response = api_client_for("admin").delete(
        f"{BASE}/points?project_name=penicillin&device_id=R1&batch_id=batch_91&start={iso(0)}&end={iso(50)}".replace(
            "+", "%2B"
        )
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"deleted": 5}  # temperature at 0, 20, 40; ph at 0, 40
    bad = api_client_for("admin").delete(f"{BASE}/points?project_name=penicillin&device_id=R1")
    assert bad.status_code == 400 and "batch_id" in bad.json()["error"]["details"]


def test_schema_documents_tsdb_endpoints(api_client_for):
    response = api_client_for("operator").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"] if response["Content-Type"].startswith("application/json") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(response.content)["paths"]
    for path, method in [
        ("/api/v1/tsdb/points", "post"),
        ("/api/v1/tsdb/points", "delete"),
        ("/api/v1/tsdb/import", "post"),
        ("/api/v1/tsdb/series", "get"),
        ("/api/v1/tsdb/series/data", "get"),
        ("/api/v1/tsdb/groups", "get"),
        ("/api/v1/tsdb/snapshots", "get"),
        ("/api/v1/tsdb/latest", "get"),
        ("/api/v1/tsdb/metadata", "put"),
    ]:
        assert method in paths[path], (path, method)
