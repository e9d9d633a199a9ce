"""What the dashboards compute, on IndPenSim data stored through the tsdb ingest service."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from apps.common.errors import ValidationFailed
from apps.dashboard import selectors as sel
from apps.dashboard.modeling import drift_analyse
from apps.dashboard.models import PointFlag
from apps.dashboard.overview import deployment_status
from apps.dashboard.services import point_flag_create
from apps.dashboard.simulation import simulation_assess, simulation_workbook
from apps.tsdb.types import GroupKey, to_ns

from .conftest import dash_update, response_json
from .seed import INDPENSIM, batch_frame, ingest_batch

T0 = datetime(2026, 3, 1, tzinfo=UTC)
#: The online inputs docs/drift.md's IndPenSim study uses (stored names).
INPUTS = [
    "aeration_rate",
    "sugar_feed_rate",
    "temperature",
    "ph",
    "dissolved_oxygen_concentration",
    "co2_percent_in_off_gas",
    "oxygen_uptake_rate",
    "vessel_volume",
]


@pytest.fixture
def long_group(db, indpensim_dir) -> GroupKey:
    """Three IndPenSim batches back to back under one batch ID: ~3,400 points per variable."""
    start = T0
    for number in (92, 93, 96):
        ingest_batch(number, start=start, batch_id="long")
        start += timedelta(hours=float(batch_frame(number)["time"].iloc[-1]) + 0.2)
    from apps.tsdb.services import variable_metadata_store
    from apps.tsdb.types import VariableMetadata

    variable_metadata_store(
        items=[VariableMetadata("penicillin", "R1", "temperature", unit="K", display_name="Temperature")]
    )
    return GroupKey("penicillin", "R1", "long")


def test_live_chart_reads_at_most_2000_points_per_trace(long_group):
    chart = sel.live_chart(group=long_group, range_key="batch", variables=["temperature", "aeration_rate"])
    assert [t.name for t in chart.process] == ["temperature", "aeration_rate"]
    for trace in chart.process:
        assert trace.total_points > 3000
        assert 0 < len(trace) <= sel.MAX_TRACE_POINTS
        assert trace.downsampled == "mean"
    # A range button reads only its window.
    last_day = sel.live_chart(group=long_group, range_key="24h", variables=["temperature"])
    assert last_day.start == last_day.end - timedelta(hours=24)
    assert last_day.process[0].times_ns.min() >= to_ns(last_day.start)
    assert last_day.process[0].times[0] == last_day.start.strftime("%Y-%m-%dT%H:%M:%S")
    assert len(last_day.process[0]) == 121  # one row every 12 min, both ends included


def test_live_chart_refuses_unknown_variables_and_ranges(long_group):
    with pytest.raises(ValidationFailed, match="not_a_variable"):
        sel.live_chart(group=long_group, variables=["not_a_variable"])
    with pytest.raises(ValidationFailed, match="range"):
        sel.live_chart(group=long_group, range_key="7y")


def test_batch_summary_is_exact(long_group):
    """Statistics from the store's mean buckets equal the ones pandas computes on the raw files."""
    summary = sel.batch_summary(group=long_group)
    frame = pd.concat([pd.read_csv(INDPENSIM / f"batch_{n}.csv") for n in (92, 93, 96)])
    by_name = {(v.source, v.variable): v for v in summary.variables}
    for column, key in (
        ("temperature", ("sensor", "temperature")),
        ("aeration_rate", ("actuator", "aeration_rate")),
        ("pH", ("sensor", "ph")),
        ("offline_penicillin_concentration", ("lab", "penicillin_concentration")),
    ):
        row = by_name[key]
        values = frame[column].dropna()
        assert row.points == len(values)
        assert row.mean == pytest.approx(values.mean(), rel=1e-9)
        assert row.minimum == pytest.approx(values.min()) and row.maximum == pytest.approx(values.max())
    assert by_name[("sensor", "temperature")].unit == "K"
    assert sum(summary.counts) == summary.total_points
    ends = [float(batch_frame(n)["time"].iloc[-1]) for n in (92, 93, 96)]
    expected_h = ends[0] + 0.2 + ends[1] + 0.2 + ends[2] - float(batch_frame(92)["time"].iloc[0])
    assert summary.duration_seconds == pytest.approx(expected_h * 3600, abs=1)


def test_point_flag_rules(db, role_users):
    group = GroupKey("penicillin", "R1", "batch_92")
    with pytest.raises(ValidationFailed) as caught:
        point_flag_create(
            group=group,
            observed_property="",
            time=datetime(2026, 3, 1),
            level="severe",
            type="gremlins",
            description=" ",
            user=role_users["operator"],
            value=float("nan"),
        )
    assert set(caught.value.details) == {"level", "type", "description", "series", "time", "value"}
    assert PointFlag.objects.count() == 0
    flag = point_flag_create(
        group=group,
        observed_property="temperature",
        time=T0,
        level="critical",
        type="sensor_fault",
        description="Spike",
        user=role_users["operator"],
        value=310.0,
    )
    assert flag.created_by == role_users["operator"] and flag.group_label == "penicillin/R1/batch_92"


def test_deployment_status_rules():
    class Run:
        def __init__(self, status: str, error: str = "") -> None:
            self.status, self.error = status, error

    ok = dict(enabled=True, online=True, last_run=Run("succeeded"), lag_seconds=10.0, latest_validity="ok", max_lag=300)
    assert deployment_status(**ok)[0] == "ok"
    assert deployment_status(**{**ok, "lag_seconds": 900.0})[0] == "warning"
    assert deployment_status(**{**ok, "latest_validity": "out_of_range"})[0] == "warning"
    assert deployment_status(**{**ok, "last_run": None})[0] == "warning"
    status, reasons = deployment_status(**{**ok, "last_run": Run("failed", "registry unavailable")})
    assert status == "failing" and "registry unavailable" in reasons[0]
    assert deployment_status(**{**ok, "online": False})[0] == "failing"
    assert deployment_status(**{**ok, "alert_severities": ("warning",)}) == (
        "warning",
        ["1 drift alert open on what it scores now"],
    )
    assert deployment_status(**{**ok, "alert_severities": ("warning", "critical")})[0] == "failing"


def test_operator_flag_is_saved_and_listed_through_the_callback(client, demo, role_users):
    client.force_login(role_users["operator"])
    batch = f"penicillin|R1|{demo.live_batch}"
    body = dict(
        inputs=[
            {"id": "batch", "property": "value", "value": batch},
            {"id": "flag-save", "property": "n_clicks", "value": 1},
        ],
        state=[
            {"id": "flag-series", "property": "value", "value": "raw|temperature||"},
            {"id": "flag-time", "property": "value", "value": "2026-03-01 12:00:00"},
            {"id": "flag-value", "property": "value", "value": 299.1},
            {"id": "flag-level", "property": "value", "value": "critical"},
            {"id": "flag-type", "property": "value", "value": "sensor_fault"},
            {"id": "flag-description", "property": "value", "value": "Probe drifting"},
        ],
        changed=["flag-save.n_clicks"],
    )
    out = response_json(dash_update(client, "operator_live", "..flags.data...flag-message.children..", **body))
    assert [row["description"] for row in out["flags"]["data"]] == ["Probe drifting"]
    assert out["flags"]["data"][0]["level"] == "Critical"
    flag = PointFlag.objects.get()
    assert (flag.observed_property, flag.value, flag.batch_id) == ("temperature", 299.1, demo.live_batch)
    # A bad time is a message, and nothing is written.
    body["state"][1]["value"] = "yesterday"
    out = response_json(dash_update(client, "operator_live", "..flags.data...flag-message.children..", **body))
    assert "time" in json.dumps(out["flag-message"])
    assert PointFlag.objects.count() == 1


def test_chart_callback_draws_estimates_lab_and_variables(client, demo, role_users):
    client.force_login(role_users["operator"])
    out = response_json(
        dash_update(
            client,
            "operator_live",
            "..chart.figure...chart-status.children..",
            [
                {"id": "batch", "property": "value", "value": f"penicillin|R1|{demo.live_batch}"},
                {"id": "range", "property": "value", "value": "batch"},
                {"id": "variables", "property": "value", "value": ["temperature"]},
                {"id": "tick", "property": "n_intervals", "value": None},
                {"id": "flags", "property": "data", "value": []},
            ],
        )
    )
    data = out["chart"]["figure"]["data"]
    names = [trace["name"] for trace in data]
    assert any("penicillin_rf" in n for n in names) and "lab penicillin_concentration" in names
    assert "temperature [K]" in names
    assert next(t for t in data if t["name"] == "temperature [K]")["yaxis"] == "y2"
    assert all(len(t["x"]) <= 2000 for t in data)


def test_simulation_and_workbook(demo, role_users):
    from apps.registry.selectors import version_spec

    sim = simulation_assess(spec=version_spec(demo.rf), group=GroupKey("penicillin", "R1", "batch_93"))
    frame = batch_frame(93)
    assert sim.rows == len(frame)
    assert sim.simulation.deployment_name == demo.deployment.name  # its deployment's mapping and age
    stats = sim.summary()["penicillin_concentration"]
    assert stats["lab_samples"] == frame["offline_penicillin_concentration"].notna().sum()
    # Residuals are lab minus the simulated estimate at the lab rows; the estimate is raw + bias in force.
    rows = sim.table_rows()
    with_lab = [r for r in rows if r["lab:penicillin_concentration"] is not None]
    assert all(
        r["res:penicillin_concentration"]
        == pytest.approx(r["lab:penicillin_concentration"] - r["pred:penicillin_concentration"], abs=2e-4)
        for r in with_lab
    )
    assert all(
        r["pred:penicillin_concentration"]
        == pytest.approx(r["raw:penicillin_concentration"] + r["bias:penicillin_concentration"], abs=2e-4)
        for r in rows
    )
    book = load_workbook(io.BytesIO(simulation_workbook(simulation=sim, user=role_users["modeler"])))
    assert book.sheetnames == ["Metadata", "Simulation", "Flagged measurements"]
    assert book["Simulation"].max_row == sim.rows + 1
    meta = {row[0].value: row[1].value for row in book["Metadata"].iter_rows()}
    assert meta["Model ID"] == "0001_[python]_penicillin_RF" and meta["Rows scored"] == sim.rows
    assert meta["Configuration of deployment"] == demo.deployment.name
    flagged = [r for r in rows if r["flagged"] == "yes"]
    assert book["Flagged measurements"].max_row == len(flagged) + 1


def test_excel_export_view(client, demo, role_users):
    url = "/modeler/simulation/export.xlsx"
    query = {"version": demo.rf.pk, "batch": "penicillin|R1|batch_92"}
    client.force_login(role_users["operator"])
    assert client.get(url, query).status_code == 403
    client.force_login(role_users["modeler"])
    response = client.get(url, query)
    assert response.status_code == 200 and response["Content-Disposition"].endswith('.xlsx"')
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Metadata", "Simulation", "Flagged measurements"]
    bad = client.get(url, {**query, "batch": "nonsense"})
    assert bad.status_code == 400 and b"project|device|batch" in bad.content
    assert client.get(url, {**query, "version": "P0001|x|1"}).status_code == 400
    assert client.get(url, {**query, "bias": "sometimes"}).status_code == 400
    assert client.get(url, {**query, "version": 99999}).status_code == 404


def test_drift_analysis_tells_a_fault_from_an_in_control_batch(demo):
    def run(batch: str):
        return drift_analyse(
            detector_key="ks",
            params={"alpha": 0.05},
            variables=INPUTS,
            reference=[GroupKey("penicillin", "R1", "batch_92"), GroupKey("penicillin", "R1", "batch_93")],
            test=GroupKey("penicillin", "R1", batch),
            window_h=(30, 120),  # the log phase
        )

    fault = run("batch_94")  # aeration fault
    assert fault.calibrated and fault.result.drift
    assert "aeration_rate" in fault.result.explanation
    assert len(fault.densities) == len(INPUTS) and len(fault.densities[0]["grid"]) == len(fault.densities[0]["test"])
    area = np.trapezoid(fault.densities[0]["reference"], fault.densities[0]["grid"])
    assert area == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValidationFailed, match="must not be a reference"):
        drift_analyse(
            detector_key="ks",
            params={},
            variables=["aeration_rate"],
            reference=[GroupKey("penicillin", "R1", "batch_92")],
            test=GroupKey("penicillin", "R1", "batch_92"),
            window_h=(0, 10),
        )
    with pytest.raises(ValidationFailed, match="alpha"):
        drift_analyse(
            detector_key="ks",
            params={"alpha": 7},
            variables=["aeration_rate"],
            reference=[GroupKey("penicillin", "R1", "batch_92")],
            test=GroupKey("penicillin", "R1", "batch_94"),
            window_h=(0, 10),
        )


def test_drift_callback_builds_form_and_runs(client, demo, role_users):
    client.force_login(role_users["modeler"])
    form = response_json(
        dash_update(
            client,
            "modeler_drift",
            "..params.children...detector-about.children..",
            [{"id": "detector", "property": "value", "value": "psi"}],
        )
    )
    params = form["params"]["children"]
    assert [p["props"]["children"][1]["props"]["id"]["name"] for p in params] == ["threshold", "bins", "epsilon"]
    assert all(len(p["props"]["title"]) > 10 for p in params)  # a tooltip per parameter
    ids = [{"type": "param", "name": n} for n in ("threshold", "bins", "epsilon")]
    out = response_json(
        dash_update(
            client,
            "modeler_drift",
            "result.children",
            [{"id": "run", "property": "n_clicks", "value": 1}],
            [
                {"id": "version", "property": "value", "value": demo.rf.pk},
                {"id": "detector", "property": "value", "value": "psi"},
                {"id": "variables", "property": "value", "value": ["aeration_rate", "temperature"]},
                {"id": "reference", "property": "value", "value": ["penicillin|R1|batch_92", "penicillin|R1|batch_93"]},
                {"id": "test", "property": "value", "value": "penicillin|R1|batch_94"},
                {"id": "window", "property": "value", "value": [20, 100]},
                [{"id": i, "property": "value", "value": v} for i, v in zip(ids, [0.1, 10, 1e-4], strict=True)],
                [{"id": i, "property": "id", "value": i} for i in ids],
            ],
        )
    )
    text = json.dumps(out)
    assert '"verdict"' in text and ("DRIFT" in text)
    assert "Population Stability Index" in text


def test_drift_alerts_reach_the_trust_panel_and_the_overview_by_the_status_rule(demo):
    """A drift job raises an alert on historical batch 94: the pages list it, say which batch and check raised
    it, and do not count it in the live status (the demo's red overview); an ad hoc run changes nothing."""
    from apps.dashboard.alerting import drift_card
    from apps.dashboard.overview import deployment_overview
    from apps.drift.services import drift_job_create, drift_job_run, drift_run_ad_hoc

    group = GroupKey("penicillin", "R1", demo.live_batch)
    before = sel.trust_panel(group=group)
    assert [(d.deployment.name, d.counted, d.last_check) for d in before.drift] == [(demo.deployment.name, [], None)]
    job = drift_job_create(
        name="aeration-watch", deployment=demo.deployment, detector="ks", params={}, variables=INPUTS,
        reference={"kind": "training"}, test={"kind": "phase", "phase": "log", "batch_id": "batch_94"},
    )
    result = drift_job_run(job=job)
    assert result.status == "succeeded" and result.drift
    status = sel.trust_panel(group=group).drift[0]
    assert status.counted == [] and status.last_check.pk == result.pk
    assert status.live_batches == (f"R1/{demo.live_batch}",)
    [(alert, why)] = status.listed
    assert "batch_94" in why and "not a batch it scores now" in why
    card = drift_card(status)
    assert card.value == "No open alert" and card.tone == "ok"
    assert any("ks (job aeration-watch) on batch_94" not in line and "last check ks on batch_94: drift" in line
               for line in card.lines)
    row = next(r for r in deployment_overview() if r.deployment.pk == demo.deployment.pk)
    assert not any("drift alert" in reason for reason in row.reasons), row.reasons

    drift_run_ad_hoc(detector="ks", deployment=demo.deployment, variables=list(INPUTS),
                     reference={"kind": "training"}, test={"kind": "phase", "phase": "log", "batch_id": "batch_94"})
    assert sel.trust_panel(group=group).drift[0].last_check.pk == result.pk  # ad hoc runs never touch it


def test_group_lag_follows_the_orchestrators_rule(demo):
    """The trust panel's lag for one group equals what ``pipeline_lag`` reports for it (same rule)."""
    from apps.orchestrator.selectors import pipeline_lag
    from apps.tsdb.csv_import import wide_csv_parse
    from apps.tsdb.services import points_ingest

    group = GroupKey("penicillin", "R1", demo.live_batch)
    assert sel.trust_panel(group=group).lag_seconds == 0.0  # every stored row is scored
    # Sixty more rows arrive and nobody scores them.
    table = wide_csv_parse(INDPENSIM / "batch_96.csv")
    first = sel.group_series(group=group).first_time
    times = table.absolute_times(first - timedelta(hours=float(batch_frame(96)["time"].iloc[0])))
    points_ingest(batch=table.to_batch(group=group, times_ns=times[600:660], rows=slice(600, 660)))
    now = sel.group_series(group=group).last_time + timedelta(minutes=5)
    contents = sel.group_series(group=group)
    from apps.tsdb.selectors import latest_points
    from apps.tsdb.types import Collection, SeriesFilter

    where = SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id)
    lag, names = sel.group_lag(
        group=group,
        raw_latest=latest_points(collection=Collection.RAW, where=where),
        predictions_latest=latest_points(collection=Collection.PREDICTIONS, where=where),
        now=now,
    )
    expected = next(
        row["waiting_seconds"]
        for entry in pipeline_lag(now=now)
        for row in entry["groups"]
        if row["group"] == f"penicillin/R1/{demo.live_batch}"
    )
    assert names == [demo.deployment.name]
    assert lag == pytest.approx(expected, abs=0.1)
    assert lag == pytest.approx((now - contents.last_time).total_seconds() + 59 * 12 * 60, abs=1)


def test_pages_show_the_estimate_as_deployed_not_the_raw_output(demo):
    """The chart, the trust card and its lab residual read ``corrected_value`` (raw + bias update in force)
    where the pipeline stored one: what the plant receives, not the raw model output."""
    from apps.tsdb.selectors import latest_points, series_read
    from apps.tsdb.services import points_ingest
    from apps.tsdb.types import PREDICTION_SOURCE, Collection, Downsample, PointBatch, SeriesFilter, estimate_values

    group = GroupKey("penicillin", "R1", demo.live_batch)
    series = sel.live_chart(group=group, range_key="batch").estimates[0].series
    stored = series_read(
        collection=Collection.PREDICTIONS, series=series, start=datetime(2000, 1, 1, tzinfo=UTC),
        end=datetime(2100, 1, 1, tzinfo=UTC), max_points=2000, method=Downsample.LTTB,
    )
    # The bias update in force lowers every estimate by 1.5 (as the pipeline stores it: raw value kept).
    points_ingest(batch=PointBatch(
        collection=Collection.PREDICTIONS, series=[series], series_index=np.zeros(len(stored), dtype=np.int32),
        times_ns=stored.times_ns, values=stored.values,
        fields={"corrected_value": stored.values - 1.5, "validity": stored.fields["validity"]},
    ))
    chart = sel.live_chart(group=group, range_key="batch")
    trace = chart.estimates[0]
    stored = series_read(
        collection=Collection.PREDICTIONS, series=trace.series, start=chart.start, end=chart.end,
        max_points=2000, method=Downsample.LTTB,
    )
    corrected = stored.fields["corrected_value"]
    assert np.isfinite(corrected).all() and np.allclose(corrected, stored.values - 1.5)
    np.testing.assert_allclose(trace.values, corrected)
    np.testing.assert_allclose(estimate_values(stored), corrected)
    (newest,) = [
        p for p in latest_points(collection=Collection.PREDICTIONS, where=SeriesFilter(
            project_name="penicillin", device_id="R1", batch_id=demo.live_batch, source=PREDICTION_SOURCE,
            model_id=trace.series.model_id, version=trace.series.version,
        ))
    ]
    card = next(e for e in sel.trust_panel(group=group).estimates if e.label == trace.name)
    assert card.value == pytest.approx(newest.fields["corrected_value"])
    assert card.value != pytest.approx(newest.value)
