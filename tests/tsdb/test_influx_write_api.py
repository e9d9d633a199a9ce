"""The InfluxDB-compatible write endpoints, through HTTP: codes, error shape, auth, bodies, storage.

These run on the configured backend (the SQL one on the test database); the last test points the same
endpoints at a real InfluxDB (skipped locally without one, required in CI).
"""

from __future__ import annotations

import base64
import gzip
import uuid
from datetime import datetime

import numpy as np
import pytest
from rest_framework.test import APIClient

from apps.tsdb.backends import get_backend
from apps.tsdb.signals import points_committed
from apps.tsdb.types import UTC, Collection, GroupKey, SeriesFilter, SeriesKey, to_ns
from tests.conftest import CALLERS, issue_token
from tests.services import INFLUXDB_URL, influxdb_available, require

T0 = to_ns(datetime(2026, 1, 1, tzinfo=UTC))
V2 = "/api/v2/write"
V1 = "/write"


def tags(batch: str, prop: str = "temperature", device: str = "R1") -> str:
    return f"device_id={device},project_name=penicillin,batch_id={batch},source=sensor,observed_property={prop}"


def lines(batch: str, n: int = 3, prop: str = "temperature", step_s: int = 20) -> str:
    return "".join(
        f"device_obs,{tags(batch, prop)} value={298 + i * 0.1!r} {T0 + i * step_s * 10**9}\n" for i in range(n)
    )


def stored(batch: str) -> dict[str, int]:
    infos = get_backend().list_series(collection=Collection.RAW, where=SeriesFilter(batch_id=batch))
    return {i.series.observed_property: i.point_count for i in infos}


def read(batch: str, prop: str = "temperature"):
    return get_backend().read(
        collection=Collection.RAW,
        series=SeriesKey("penicillin", "R1", batch, "sensor", prop),
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2027, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def writer(role_users) -> APIClient:
    """A client with the token of a user holding ingest_data (the modeler)."""
    client = APIClient()
    key = issue_token(role_users["modeler"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.token_key = key
    return client


def post(client: APIClient, url: str, body: bytes | str, content_type: str = "text/plain; charset=utf-8", **extra):
    data = body.encode() if isinstance(body, str) else body
    return client.post(url, data=data, content_type=content_type, **extra)


def batch_id() -> str:
    return f"batch_{uuid.uuid4().hex[:8]}"


# --- success -----------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_v2_write_stores_points_and_fires_the_after_commit_hook(writer):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    points_committed.connect(receiver)
    try:
        b = batch_id()
        body = lines(b, 3) + lines(b, 2, prop="ph")
        response = post(writer, f"{V2}?bucket=stamm_raw&org=stamm&precision=ns", body)
    finally:
        points_committed.disconnect(receiver)
    assert response.status_code == 204, response.content
    assert response.content == b""
    assert stored(b) == {"temperature": 3, "ph": 2}
    np.testing.assert_allclose(read(b).values, [298.0, 298.1, 298.2])
    assert len(received) == 1
    assert received[0]["groups"] == frozenset({GroupKey("penicillin", "R1", b)})
    assert received[0]["points"] == 5 and received[0]["collection"] is Collection.RAW


@pytest.mark.django_db
def test_v1_write_with_precision_and_token_as_password(writer):
    b = batch_id()
    body = f"device_obs,{tags(b)} value=1.5 {T0 // 10**9}\n"
    response = post(APIClient(), f"{V1}?db=stamm_raw&precision=s&u=anyone&p={writer.token_key}", body)
    assert response.status_code == 204, response.content
    assert read(b).times_ns.tolist() == [T0]
    basic = base64.b64encode(f"telegraf:{writer.token_key}".encode()).decode()
    body = f"device_obs,{tags(b)} value=2.5 {T0 // 10**6 + 20_000}\n"
    response = post(
        APIClient(), f"{V1}?db=stamm_raw&rp=autogen&precision=ms", body, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 204, response.content
    assert read(b).values.tolist() == [1.5, 2.5]


@pytest.mark.django_db
def test_gzip_body_and_bucket_with_retention_suffix(writer):
    b = batch_id()
    body = gzip.compress(lines(b, 50).encode())
    response = post(writer, f"{V2}?bucket=stamm_raw/autogen", body, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 204, response.content
    assert stored(b) == {"temperature": 50}


@pytest.mark.django_db
def test_large_body_streams_across_reads_with_lines_straddling_them(writer):
    b = batch_id()
    body = lines(b, 12_000, step_s=1)  # about 1.6 MB: several 1 MiB reads, lines cut at the boundaries
    assert len(body) > 1024 * 1024
    response = post(writer, f"{V2}?bucket=stamm_raw", body, content_type="application/octet-stream")
    assert response.status_code == 204, response.content
    assert stored(b) == {"temperature": 12_000}


@pytest.mark.django_db
def test_duplicates_last_wins_and_out_of_order_is_accepted(writer):
    b = batch_id()
    body = (
        f"device_obs,{tags(b)} value=3 {T0 + 40 * 10**9}\n"
        f"device_obs,{tags(b)} value=1 {T0}\n"
        f"device_obs,{tags(b)} value=9 {T0 + 40 * 10**9}\n"
    )
    assert post(writer, f"{V2}?bucket=stamm_raw", body).status_code == 204
    # A second request overwrites too: (series, time) is the identity.
    assert post(writer, f"{V2}?bucket=stamm_raw", f"device_obs,{tags(b)} value=2 {T0}\n").status_code == 204
    data = read(b)
    assert data.times_ns.tolist() == [T0, T0 + 40 * 10**9]
    assert data.values.tolist() == [2.0, 9.0]


@pytest.mark.django_db
def test_predictions_bucket_with_extra_fields(writer):
    b = batch_id()
    key = SeriesKey(
        "penicillin", "R1", b, "soft_sensor", "penicillin_concentration", "0001_[python]_penicillin_rf", "V.1.0"
    )
    line = (
        f"device_obs,device_id=R1,project_name=penicillin,batch_id={b},source=soft_sensor,"
        "observed_property=penicillin_concentration,model_id=0001_[python]_penicillin_rf,version=V.1.0 "
        f'value=1.25,validity="ok",corrected_value=1.3 {T0}\n'
    )
    assert post(writer, f"{V2}?bucket=stamm_predictions", line).status_code == 204
    data = get_backend().read(
        collection=Collection.PREDICTIONS,
        series=key,
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert data.values.tolist() == [1.25] and list(data.fields["validity"]) == ["ok"]


@pytest.mark.django_db
def test_metadata_bucket_upserts_variable_metadata(writer):
    project = f"p{uuid.uuid4().hex[:6]}"
    body = (
        f'device_obs,device_id=R1,project_name={project},observed_property=temperature unit="K",'
        'display_name="Temperature",decimals=1i\n'
    )
    assert post(writer, f"{V2}?bucket=stamm_metadata", body).status_code == 204
    items = get_backend().metadata_read(project_name=project)
    assert [(m.observed_property, m.unit, m.display_name, m.decimals) for m in items] == [
        ("temperature", "K", "Temperature", 1)
    ]


# --- bad input: InfluxDB's codes and error body, nothing written -----------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bad", "fragment", "query"),
    [
        ("device_obs,{tags}", "missing fields", ""),
        ("device_obs,{tags} value=1 {t} junk", "unescaped spaces", ""),
        ("device_obs,{tags_space} value=1 {t}", "unescaped spaces", ""),
        ("device_obs,{tags_comma} value=1 {t}", "unescaped comma", ""),
        ("device_obs,{tags} value=NaN {t}", "not a finite number", ""),
        ("device_obs,{tags} value=+Inf {t}", "not a finite number", ""),
        ('device_obs,{tags} value="298.1" {t}', "is a string", ""),
        ("device_obs,{tags} value=true {t}", "is a boolean", ""),
        ("device_obs,{tags} value=1 {t_s}", "wrong precision", ""),
        ("device_obs,{tags} value=1 {t}", "out of range in precision 's'", "&precision=s"),
        ("device_obs,{tags} value=1 99999999999999999999", "out of range", ""),
        ("device_obs,{tags_no_batch} value=1 {t}", "missing required tag(s): batch_id", ""),
        ("device_obs,{tags},host=x value=1 {t}", "unknown tag 'host'", ""),
    ],
)
def test_bad_lines_are_400_with_line_number_and_nothing_is_written(writer, bad, fragment, query):
    b = batch_id()
    t = tags(b)
    bad_line = bad.format(
        tags=t,
        tags_space=t.replace("R1", "R 1"),
        tags_comma=t.replace("penicillin", "peni,cillin"),
        tags_no_batch=t.replace(f"batch_id={b},", ""),
        t=T0 + 60 * 10**9,
        t_s=T0 // 10**9,
    )
    body = lines(b, 3) + bad_line + "\n" + lines(b, 1)
    if "precision=s" in query:  # the good lines must be in seconds too
        body = f"device_obs,{t} value=1 {T0 // 10**9}\n" * 3 + bad_line + "\n"
    response = post(writer, f"{V2}?bucket=stamm_raw{query}", body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid"
    assert payload["line"] == 4
    assert payload["message"].startswith("line 4: ") and fragment in payload["message"]
    assert stored(b) == {}


@pytest.mark.django_db
def test_v1_errors_also_carry_the_1x_error_key(writer):
    response = post(writer, f"{V1}?db=stamm_raw", "device_obs value=1\n")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["error"] == body["message"] and "missing required tag" in body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["", "\n", "# nothing but a comment\n"])
def test_empty_body_is_400(writer, body):
    response = post(writer, f"{V2}?bucket=stamm_raw", body)
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "message": "writing requires points (the body holds no line)"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        (f"{V2}?bucket=stamm_other", 404, 'bucket "stamm_other" not found'),
        (f"{V1}?db=telegraf", 404, 'database not found: "telegraf"'),
        (f"{V2}?org=stamm", 400, "bucket is required"),
        (f"{V1}", 400, "database (db) is required"),
        (f"{V2}?bucket=stamm_raw&precision=d", 400, "invalid precision 'd'"),
    ],
)
def test_unknown_or_missing_bucket_and_bad_precision(writer, url, status, message):
    response = post(writer, url, lines(batch_id(), 1))
    assert response.status_code == status
    assert message in response.json()["message"]
    assert response.json()["code"] == {400: "invalid", 404: "not found"}[status]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/json", ""),
        ("multipart/form-data; boundary=x", ""),
        ("text/plain; charset=latin-1", ""),
        ("text/plain", "br"),
    ],
)
def test_wrong_content_type_or_encoding_is_415(writer, content_type, encoding):
    b = batch_id()
    extra = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}
    response = post(writer, f"{V2}?bucket=stamm_raw", lines(b, 2), content_type=content_type, **extra)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported media type"
    assert stored(b) == {}


@pytest.mark.django_db
def test_broken_gzip_is_400(writer):
    body = gzip.compress(lines(batch_id(), 20).encode())
    for broken in (b"not gzip at all", body[: len(body) // 2]):
        response = post(writer, f"{V2}?bucket=stamm_raw", broken, HTTP_CONTENT_ENCODING="gzip")
        assert response.status_code == 400
        assert "not valid gzip" in response.json()["message"]


@pytest.mark.django_db
def test_oversized_body_is_413_plain_and_after_decompression(writer, settings):
    settings.TSDB_LINE_PROTOCOL_MAX_BYTES = 4096
    b = batch_id()
    big = lines(b, 60)
    assert len(big) > 4096
    response = post(writer, f"{V2}?bucket=stamm_raw", big)
    assert response.status_code == 413
    assert response.json()["code"] == "request too large"
    # A small gzip body that inflates past the limit (a "zip bomb") is refused too.
    bomb = gzip.compress(b"#" * 2_000_000)
    assert len(bomb) < 4096
    response = post(writer, f"{V2}?bucket=stamm_raw", bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413 and "after decompression" in response.json()["message"]
    assert stored(b) == {}
    assert post(writer, f"{V2}?bucket=stamm_raw", lines(b, 10)).status_code == 204


# --- auth ------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_only_users_with_ingest_data_may_write(api_client_for, caller):
    expected = {"anonymous": 401, "outsider": 403, "operator": 403, "manager": 403, "modeler": 204, "admin": 204}[
        caller
    ]
    response = post(api_client_for(caller), f"{V2}?bucket=stamm_raw", lines(batch_id(), 1))
    assert response.status_code == expected, response.content
    if expected == 401:
        assert response.json() == {"code": "unauthorized", "message": "unauthorized access"}
        assert response["WWW-Authenticate"].startswith("Token")
    if expected == 403:
        assert response.json()["code"] == "forbidden"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", ["Token not-a-real-token", "Bearer nope", "Basic " + base64.b64encode(b"u:wrong").decode(), "Basic !!"]
)
def test_bad_credentials_are_401(role_users, header):
    response = post(APIClient(), f"{V2}?bucket=stamm_raw", lines(batch_id(), 1), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


@pytest.mark.django_db
def test_inactive_user_token_is_401(writer, role_users):
    role_users["modeler"].is_active = False
    role_users["modeler"].save()
    assert post(writer, f"{V2}?bucket=stamm_raw", lines(batch_id(), 1)).status_code == 401


@pytest.mark.django_db
def test_accept_header_does_not_matter(writer):
    b = batch_id()
    response = post(writer, f"{V2}?bucket=stamm_raw", lines(b, 1), HTTP_ACCEPT="text/plain")
    assert response.status_code == 204
    assert stored(b) == {"temperature": 1}  # written, whatever the client said it accepts
    refused = batch_id()
    response = post(writer, f"{V2}?bucket=nope", lines(refused, 1), HTTP_ACCEPT="text/html")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    assert stored(refused) == {}


# --- the same endpoints on the InfluxDB backend ------------------------------------------------------
@pytest.mark.django_db
def test_endpoint_on_influxdb_backend(writer, settings):
    require(influxdb_available(), "InfluxDB")
    from apps.tsdb.backends.influx import InfluxBackend, ident

    prefix = f"w{uuid.uuid4().hex[:8]}_"
    options = {
        "URL": INFLUXDB_URL,
        "DATABASES": {"raw": prefix + "raw", "predictions": prefix + "predictions", "metadata": prefix + "metadata"},
        "RETENTION": {"raw": "INF", "predictions": "INF", "metadata": "INF"},
    }
    settings.TSDB = {"BACKEND": "apps.tsdb.backends.influx.InfluxBackend", "OPTIONS": options}
    backend = get_backend()
    assert isinstance(backend, InfluxBackend)
    backend.ensure_collections()
    try:
        b = batch_id()
        body = gzip.compress((lines(b, 5) + lines(b, 5)).encode())  # the repeat overwrites: still 5 points
        response = post(writer, f"{V2}?bucket=stamm_raw", body, HTTP_CONTENT_ENCODING="gzip")
        assert response.status_code == 204, response.content
        assert stored(b) == {"temperature": 5}
        bad = post(writer, f"{V2}?bucket=stamm_raw", lines(b, 2) + "device_obs value=x\n")
        assert bad.status_code == 400 and stored(b) == {"temperature": 5}
        assert read(b).times_ns[-1] == T0 + 4 * 20 * 10**9
    finally:
        for name in options["DATABASES"].values():
            backend.query(f"DROP DATABASE {ident(name)}")


# --- large bodies -------------------------------------------------------------------------------------
def _count_stream_writes(monkeypatch) -> list[int]:
    """Spy on the stream the endpoint opens: one entry (points written) per ``write`` call."""
    from apps.tsdb.backends.sql import SQLBackend

    calls: list[int] = []
    open_stream = SQLBackend.write_stream

    def spying(self, collection):
        stream = open_stream(self, collection)
        write = stream.write

        def counted(batch):
            calls.append(write(batch))
            return calls[-1]

        stream.write = counted
        return stream

    monkeypatch.setattr(SQLBackend, "write_stream", spying)
    return calls


def _post_450_lines_and_an_overwrite(writer, b: str) -> tuple[object, list[int]]:
    """POST (gzip) 450 lines then one overwriting the first point; returns the answer and the signals' counts."""
    received: list[int] = []

    def receiver(sender, **kwargs):
        received.append(kwargs["points"])

    body = lines(b, 450, step_s=1) + f"device_obs,{tags(b)} value=-1 {T0}\n"
    points_committed.connect(receiver)
    try:
        response = post(writer, f"{V2}?bucket=stamm_raw", gzip.compress(body.encode()), HTTP_CONTENT_ENCODING="gzip")
    finally:
        points_committed.disconnect(receiver)
    assert response.status_code == 204, response.content
    data = read(b)
    assert len(data) == 450 and data.values[0] == -1.0 and data.values[1] == pytest.approx(298.1)
    return response, received


@pytest.mark.django_db(transaction=True)
def test_large_body_is_written_while_it_parses_with_last_wins_and_one_commit(writer, monkeypatch):
    """SQL backend: each piece is written as soon as it parses, all in one transaction, one signal."""
    from apps.tsdb import influx_apis

    monkeypatch.setattr(influx_apis, "FEED_SIZE", 4096)  # about 30 lines per piece
    monkeypatch.setattr(influx_apis, "READ_SIZE", 10_000)
    writes = _count_stream_writes(monkeypatch)
    b = batch_id()
    _response, received = _post_450_lines_and_an_overwrite(writer, b)
    assert len(writes) >= 10 and sum(writes) == 451
    assert received == [451]  # one signal, after the one commit
    assert stored(b) == {"temperature": 450}


@pytest.mark.django_db(transaction=True)
def test_large_body_is_validated_whole_then_written_in_chunks_when_the_backend_cannot_roll_back(writer, monkeypatch):
    """A backend without transactions (InfluxDB) gets nothing until the whole body has validated."""
    from apps.tsdb import influx_apis
    from apps.tsdb.backends.sql import SQLBackend

    monkeypatch.setattr(SQLBackend, "transactional", False)  # the SQL store standing in for one
    monkeypatch.setattr(influx_apis, "CHUNK_POINTS", 100)
    monkeypatch.setattr(influx_apis, "SPOOL_MEMORY", 2000)  # the spool moves to a temporary file
    monkeypatch.setattr(influx_apis, "READ_SIZE", 4096)  # about 30 lines per read
    writes = _count_stream_writes(monkeypatch)
    _response, received = _post_450_lines_and_an_overwrite(writer, batch_id())
    bad = post(writer, f"{V2}?bucket=stamm_raw", lines(batch_id(), 450) + "device_obs value=oops\n")
    assert bad.status_code == 400 and bad.json()["line"] == 451
    assert writes == []  # no stream: the two-pass path
    # Several chunks of about 100 points (reads are whole lines), all signalled after the one commit.
    assert sum(received) == 451 and 4 <= len(received) <= 5 and max(received) < 140


@pytest.mark.django_db
def test_large_body_with_a_bad_last_line_writes_nothing(writer, monkeypatch):
    """Pieces already written when the bad line arrives are rolled back."""
    from apps.tsdb import influx_apis

    monkeypatch.setattr(influx_apis, "CHUNK_POINTS", 100)
    monkeypatch.setattr(influx_apis, "FEED_SIZE", 4096)
    writes = _count_stream_writes(monkeypatch)
    b = batch_id()
    response = post(writer, f"{V2}?bucket=stamm_raw", lines(b, 450) + f"device_obs,{tags(b)} value=oops\n")
    assert response.status_code == 400 and response.json()["line"] == 451
    assert len(writes) >= 10  # pieces had gone to the database before the bad line
    assert stored(b) == {}
