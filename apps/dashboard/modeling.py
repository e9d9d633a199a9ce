"""Selectors of the modeler pages: soft sensors, simulation of a version over a batch, model divergence
and drift analysis. They compose the registry (versions, in-process prediction), the time-series store
(as-of snapshots, lab samples) and the drift catalogue; nothing here writes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed
from apps.tsdb.selectors import series_list, series_read, snapshots_get
from apps.tsdb.types import LAB_SOURCE, Collection, Downsample, GroupKey, from_ns

from .models import PointFlag
from .selectors import LAB_MATCH_TOLERANCE, group_filter, group_series, variable_units

#: Most snapshot rows a simulation scores (the store's cap on one snapshot read).
MAX_SIMULATION_ROWS = 10_000
#: An input older than this at a snapshot's time makes the row incomplete (as the pipeline does).
SIMULATION_MAX_AGE = timedelta(hours=1)
#: A lab residual larger than this many residual SDs of the batch flags the row.
RESIDUAL_FLAG_SD = 2.0


# --------------------------------------------------------------------------------------- soft sensors


def version_value(version: Any) -> str:
    return f"{version.soft_sensor.project.project_id}|{version.soft_sensor.model_id}|{version.number}"


def version_label(version: Any) -> str:
    aliases = [a.name for a in version.soft_sensor.aliases.all() if a.version_id == version.pk]
    tags = f" @{', @'.join(aliases)}" if aliases else ""
    return f"{version.soft_sensor.model_id} v{version.number} ({version.status}){tags}"


def version_options() -> list[dict[str, str]]:
    """Every live version of every soft sensor, newest first within a soft sensor."""
    from apps.registry.selectors import project_list, soft_sensor_list

    options = []
    for project in project_list():
        for soft_sensor in soft_sensor_list(project=project):
            for version in soft_sensor.versions.all():
                if version.archived_at is None:
                    options.append({"label": version_label(version), "value": version_value(version)})
    return options


def version_resolve(value: Any) -> Any:
    """``"P0001|model_id|3"`` → the ModelVersion (404 when gone, 400 when malformed)."""
    from apps.registry.selectors import version_for_predict

    parts = str(value or "").split("|")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValidationFailed("version: expected project|model|number", details={"version": value})
    return version_for_predict(project_id=parts[0], model_id=parts[1], number=int(parts[2]))


def soft_sensor_overview(*, project_id: str) -> list[dict[str, Any]]:
    """Soft sensors of a project with descriptor details, versions and alias history."""
    from apps.registry.selectors import alias_history, project_get, soft_sensor_list

    project = project_get(project_id=project_id)
    result = []
    for soft_sensor in soft_sensor_list(project=project):
        versions = list(soft_sensor.versions.all())
        newest = versions[0] if versions else None
        config = (newest.descriptor if newest else None) or {}
        description = config.get("model_description") or {}
        identification = config.get("model_identification") or {}
        training = config.get("training_information") or {}
        result.append(
            {
                "soft_sensor": soft_sensor,
                "model_id": soft_sensor.model_id,
                "name": soft_sensor.name or identification.get("name", ""),
                "learner": description.get("learner", ""),
                "model_type": description.get("model_type", ""),
                "description": description.get("description", ""),
                "author": identification.get("author", ""),
                "language": soft_sensor.language,
                "training": {
                    "instances": training.get("number_of_instances"),
                    "experiments": training.get("experiments_ID"),
                    "validation": training.get("validation"),
                },
                "features": [
                    {
                        "name": f.get("name"),
                        "type": f.get("type", ""),
                        "units": f.get("units", ""),
                        "min": (f.get("expected_range") or {}).get("min"),
                        "max": (f.get("expected_range") or {}).get("max"),
                    }
                    for f in (config.get("inputs") or {}).get("features") or []
                ],
                "outputs": [
                    {
                        "name": o.get("name"),
                        "units": o.get("units", ""),
                        "min": (o.get("expected_range") or {}).get("min"),
                        "max": (o.get("expected_range") or {}).get("max"),
                    }
                    for o in (config.get("outputs") or {}).get("information") or []
                ],
                "versions": [
                    {
                        "number": v.number,
                        "label": v.version_label,
                        "status": v.status,
                        "flavor": v.flavor,
                        "created_at": v.created_at,
                        "created_by": v.created_by.get_username() if v.created_by else "",
                        "source": v.source,
                        "archived": v.archived_at is not None,
                        "aliases": ", ".join(a.name for a in soft_sensor.aliases.all() if a.version_id == v.pk),
                    }
                    for v in versions
                ],
                "alias_history": [
                    {
                        "alias": move.alias_name,
                        "from": move.from_version.number if move.from_version else None,
                        "to": move.to_version.number if move.to_version else None,
                        "by": move.moved_by.get_username() if move.moved_by else "",
                        "at": move.moved_at,
                        "reason": move.reason,
                    }
                    for move in alias_history(soft_sensor=soft_sensor)[:50]
                ],
            }
        )
    return result


# ----------------------------------------------------------------------------------------- simulation


def _canonical(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def feature_variables(*, version: Any, available: Sequence[str]) -> list[str]:
    """The batch variable feeding each feature: a deployment's input mapping for this soft sensor, else
    the feature's own name, else its snake_case form (``pH`` → ``ph``, as the CSV import names it)."""
    from apps.orchestrator.models import Deployment

    features = [str(f["name"]) for f in version.descriptor["inputs"]["features"]]
    mapping: Mapping[str, str] = {}
    deployment = Deployment.objects.filter(soft_sensor_id=version.soft_sensor_id).order_by("pk").first()
    if deployment is not None:
        mapping = deployment.input_mapping or {}
    present = set(available)
    chosen = []
    for feature in features:
        candidates = [mapping.get(feature), feature, _canonical(feature)]
        chosen.append(next((c for c in candidates if c and c in present), mapping.get(feature) or feature))
    missing = [f for f, v in zip(features, chosen, strict=True) if v not in present]
    if missing:
        raise ValidationFailed(
            f"the batch lacks input(s) {', '.join(missing)} of this version", details={"missing": missing}
        )
    return chosen


@dataclass
class Simulation:
    """A version scored over a stored batch (nothing written), row by row with lab comparisons."""

    version: Any
    group: GroupKey
    features: list[str]
    variables: list[str]
    outputs: list[str]
    units: dict[str, str]
    times_ns: np.ndarray
    inputs: np.ndarray  # rows × features
    predictions: np.ndarray  # rows × outputs
    validity: list[dict[str, Any]]
    lab: np.ndarray  # rows × outputs, NaN where no lab sample matched
    skipped: int
    skipped_reasons: dict[str, int]
    truncated: bool
    flags: list[PointFlag] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.times_ns.shape[0])

    @property
    def residuals(self) -> np.ndarray:
        return self.lab - self.predictions

    def residual_sd(self) -> np.ndarray:
        r = self.residuals
        out = np.full(r.shape[1], np.nan)
        for j in range(r.shape[1]):
            finite = r[:, j][np.isfinite(r[:, j])]
            if finite.size >= 3:
                out[j] = float(finite.std(ddof=1))
        return out

    def row_flags(self) -> list[list[str]]:
        """Computed flags of each row: inputs out of range, output out of its declared range, a lab
        residual beyond ``RESIDUAL_FLAG_SD`` SDs, a person's flag near the row's time."""
        config = self.version.descriptor
        out_ranges = [(o.get("expected_range") or {}) for o in config["outputs"]["information"]]
        sd = self.residual_sd()
        residuals = self.residuals
        flag_times = np.array([int(f.time.timestamp() * 1e9) for f in self.flags], dtype=np.int64)
        tolerance = int(LAB_MATCH_TOLERANCE.total_seconds() * 1e9) // 3
        result: list[list[str]] = []
        for i in range(self.rows):
            flags = []
            verdict = self.validity[i]
            if verdict.get("verdict") == "out_of_range":
                flags.append("inputs out of range: " + ", ".join(verdict.get("inputs", [])))
            for j, name in enumerate(self.outputs):
                low, high = out_ranges[j].get("min"), out_ranges[j].get("max")
                value = self.predictions[i, j]
                if (low is not None and value < low) or (high is not None and value > high):
                    flags.append(f"{name} outside its declared range")
                if (
                    np.isfinite(residuals[i, j])
                    and np.isfinite(sd[j])
                    and abs(residuals[i, j]) > RESIDUAL_FLAG_SD * sd[j]
                ):
                    flags.append(f"{name} lab residual beyond {RESIDUAL_FLAG_SD:g} SD")
            if flag_times.size and np.any(np.abs(flag_times - self.times_ns[i]) <= tolerance):
                flags.append("flagged by a person")
            result.append(flags)
        return result

    def table_rows(self) -> list[dict[str, Any]]:
        start = int(self.times_ns[0]) if self.rows else 0
        flags = self.row_flags()
        rows = []
        for i in range(self.rows):
            row: dict[str, Any] = {
                "row": i + 1,
                "time": from_ns(int(self.times_ns[i])).strftime("%Y-%m-%d %H:%M:%S"),
                "elapsed_h": round((int(self.times_ns[i]) - start) / 3.6e12, 3),
            }
            for j, name in enumerate(self.outputs):
                row[f"pred:{name}"] = round(float(self.predictions[i, j]), 4)
                lab = self.lab[i, j]
                row[f"lab:{name}"] = None if not np.isfinite(lab) else round(float(lab), 4)
                res = self.residuals[i, j]
                row[f"res:{name}"] = None if not np.isfinite(res) else round(float(res), 4)
            for j, name in enumerate(self.features):
                row[f"in:{name}"] = round(float(self.inputs[i, j]), 4)
            row["validity"] = self.validity[i].get("verdict", "ok")
            row["flags"] = "; ".join(flags[i])
            row["flagged"] = "yes" if flags[i] else "no"
            rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        res = self.residuals
        out = {}
        for j, name in enumerate(self.outputs):
            finite = res[:, j][np.isfinite(res[:, j])]
            out[name] = {
                "lab_samples": int(finite.size),
                "mae": float(np.mean(np.abs(finite))) if finite.size else None,
                "rmse": float(np.sqrt(np.mean(finite**2))) if finite.size else None,
                "bias": float(np.mean(finite)) if finite.size else None,
            }
        return out


def simulation_run(*, version: Any, group: GroupKey, max_age: timedelta = SIMULATION_MAX_AGE) -> Simulation:
    """Score ``version`` in-process on the batch's as-of snapshots and match lab samples."""
    from apps.registry.serving import predict_matrix

    contents = group_series(group=group)
    variables = feature_variables(version=version, available=contents.process_variables)
    distinct = tuple(dict.fromkeys(variables))
    snapshots = snapshots_get(group=group, variables=distinct, after=None, max_age=max_age, limit=MAX_SIMULATION_ROWS)
    complete = np.asarray(snapshots.complete, dtype=bool)
    skipped_reasons: dict[str, int] = {}
    for i in np.flatnonzero(~complete):
        reason = (snapshots.reasons[i] or "incomplete").split(":")[0]
        skipped_reasons[reason] = skipped_reasons.get(reason, 0) + 1
    if not complete.any():
        raise ValidationFailed(
            f"no complete snapshot of {version.soft_sensor.model_id}'s inputs in {group.batch_id}",
            details={"skipped": skipped_reasons},
        )
    columns = [distinct.index(v) for v in variables]
    inputs = snapshots.matrix[complete][:, columns]
    times = snapshots.times_ns[complete].astype(np.int64)
    result = predict_matrix(version, inputs)
    predictions = np.asarray(result.predictions, dtype=float).reshape(inputs.shape[0], -1)
    outputs = list(result.outputs)
    lab = np.full(predictions.shape, np.nan)
    lab_infos = {i.series.observed_property: i for i in contents.raw if i.series.source == LAB_SOURCE}
    tolerance_ns = int(LAB_MATCH_TOLERANCE.total_seconds() * 1e9)
    for j, name in enumerate(outputs):
        info = lab_infos.get(name)
        if info is None:
            continue
        data = series_read(
            collection=Collection.RAW,
            series=info.series,
            start=info.first_time,
            end=info.last_time,
            max_points=MAX_SIMULATION_ROWS,
            method=Downsample.LTTB,
        )
        if not len(data):
            continue
        # Each lab sample goes to its nearest simulated row (within the tolerance).
        pos = np.clip(np.searchsorted(times, data.times_ns), 1, max(1, times.size - 1))
        left = np.maximum(pos - 1, 0)
        pos = np.minimum(pos, times.size - 1)
        nearest = np.where(np.abs(times[left] - data.times_ns) <= np.abs(times[pos] - data.times_ns), left, pos)
        ok = np.abs(times[nearest] - data.times_ns) <= tolerance_ns
        lab[nearest[ok], j] = data.values[ok]
    flags = list(
        PointFlag.objects.filter(
            project_name=group.project_name,
            device_id=group.device_id,
            batch_id=group.batch_id,
            time__gte=from_ns(int(times[0])) - LAB_MATCH_TOLERANCE,
            time__lte=from_ns(int(times[-1])) + LAB_MATCH_TOLERANCE,
        ).select_related("created_by")
    )
    return Simulation(
        version=version,
        group=group,
        features=list(result.features),
        variables=variables,
        outputs=outputs,
        units=variable_units(project_name=group.project_name, device_id=group.device_id),
        times_ns=times,
        inputs=inputs,
        predictions=predictions,
        validity=list(result.validity),
        lab=lab,
        skipped=int((~complete).sum()),
        skipped_reasons=skipped_reasons,
        truncated=len(snapshots) >= MAX_SIMULATION_ROWS,
        flags=flags,
    )


def simulation_workbook(*, simulation: Simulation, user: Any = None) -> bytes:
    """The simulation as an Excel workbook: Metadata, Simulation and Flagged measurements sheets."""
    import io

    from django.utils import timezone
    from openpyxl import Workbook
    from openpyxl.styles import Font

    sim = simulation
    version = sim.version
    book = Workbook()
    meta = book.active
    meta.title = "Metadata"
    summary = sim.summary()
    rows: list[tuple[str, Any]] = [
        ("Generated at (UTC)", timezone.now().strftime("%Y-%m-%d %H:%M:%S")),
        ("Generated by", user.get_username() if user is not None and user.is_authenticated else ""),
        ("Project", version.soft_sensor.project.project_id),
        ("Model ID", version.soft_sensor.model_id),
        ("Version", version.number),
        ("Version label", version.version_label),
        ("Version status", version.status),
        ("Batch", f"{sim.group.project_name}/{sim.group.device_id}/{sim.group.batch_id}"),
        ("Rows scored", sim.rows),
        ("Snapshots skipped", sim.skipped),
        ("Skipped reasons", "; ".join(f"{k}: {v}" for k, v in sim.skipped_reasons.items())),
        ("Truncated at", MAX_SIMULATION_ROWS if sim.truncated else ""),
        ("Maximum input age (s)", int(SIMULATION_MAX_AGE.total_seconds())),
        (
            "Features (descriptor order)",
            ", ".join(f"{f} ← {v}" for f, v in zip(sim.features, sim.variables, strict=True)),
        ),
        ("Outputs", ", ".join(f"{o} [{sim.units.get(o, '')}]" for o in sim.outputs)),
    ]
    for name, stats in summary.items():
        rows.append((f"{name}: lab samples matched", stats["lab_samples"]))
        rows.append((f"{name}: MAE", stats["mae"]))
        rows.append((f"{name}: RMSE", stats["rmse"]))
        rows.append((f"{name}: bias (lab − estimate)", stats["bias"]))
    for key, value in rows:
        meta.append([key, value])
    for cell in meta["A"]:
        cell.font = Font(bold=True)
    meta.column_dimensions["A"].width = 34
    meta.column_dimensions["B"].width = 60

    table = sim.table_rows()
    header = list(table[0].keys()) if table else []
    sheet = book.create_sheet("Simulation")
    sheet.append(header)
    for row in table:
        sheet.append([row[h] for h in header])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"

    flagged = book.create_sheet("Flagged measurements")
    flagged.append(["row", "time", "flags"] + [h for h in header if h.startswith(("pred:", "lab:", "res:"))])
    for row in table:
        if row["flagged"] == "yes":
            flagged.append(
                [row["row"], row["time"], row["flags"]]
                + [row[h] for h in header if h.startswith(("pred:", "lab:", "res:"))]
            )
    if sim.flags:
        flagged.append([])
        flagged.append(["Flags recorded by people in this batch"])
        flagged.append(["time", "series", "value", "level", "type", "description", "by"])
        for flag in sim.flags:
            flagged.append(
                [
                    flag.time.strftime("%Y-%m-%d %H:%M:%S"),
                    flag.observed_property,
                    flag.value,
                    flag.get_level_display(),
                    flag.get_type_display(),
                    flag.description,
                    flag.created_by.get_username() if flag.created_by else "",
                ]
            )
    for cell in flagged[1]:
        cell.font = Font(bold=True)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- divergence


@dataclass
class Divergence:
    group: GroupKey
    labels: list[str]
    times_ns: np.ndarray
    predictions: np.ndarray  # rows × models (the first output of each version)
    output: str
    unit: str
    pairs: list[dict[str, Any]]


def divergence_run(*, versions: Sequence[Any], group: GroupKey) -> Divergence:
    """Score several versions on one batch, align them on common rows and compare every pair with the
    seven estimators of ``apps.drift.detectors.disagreement`` (coloured by their bands)."""
    from apps.drift.detectors.disagreement import disagreement_estimators

    if len(versions) < 2:
        raise ValidationFailed("choose at least two versions to compare", details={"versions": len(versions)})
    runs = [simulation_run(version=v, group=group) for v in versions]
    output = runs[0].outputs[0]
    for run in runs[1:]:
        if output not in run.outputs:
            raise ValidationFailed(
                f"{run.version.soft_sensor.model_id} v{run.version.number} does not predict {output}",
                details={"output": output},
            )
    common = runs[0].times_ns
    for run in runs[1:]:
        common = np.intersect1d(common, run.times_ns)
    if common.size < 2:
        raise ValidationFailed("the versions share fewer than two scored rows on this batch")
    columns = []
    for run in runs:
        index = np.searchsorted(run.times_ns, common)
        columns.append(run.predictions[index, run.outputs.index(output)])
    matrix = np.column_stack(columns)
    labels = [f"{r.version.soft_sensor.model_id} v{r.version.number}" for r in runs]
    scale = float(matrix.std()) or 1.0
    pairs = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            estimators = disagreement_estimators(matrix[:, i], matrix[:, j], scale=scale)
            pairs.append({"a": labels[i], "b": labels[j], **estimators})
    return Divergence(group, labels, common, matrix, output, runs[0].units.get(output, ""), pairs)


# --------------------------------------------------------------------------------------------- drift


def feature_detectors() -> list[dict[str, Any]]:
    """Catalogue entries of the detectors that compare process-variable windows (the page's choice)."""
    from apps.drift.detectors import catalogue

    return [entry for entry in catalogue() if entry["input"] == "features"]


@dataclass
class DriftAnalysis:
    result: Any  # apps.drift.detectors.DriftResult
    calibrated: bool
    reference_batches: list[str]
    test_batch: str
    window_h: tuple[float, float]
    variables: list[str]
    units: dict[str, str]
    reference: np.ndarray
    test: np.ndarray
    densities: list[dict[str, Any]]


def _window_rows(group: GroupKey, variables: tuple[str, ...], window_h: tuple[float, float]) -> np.ndarray:
    snapshots = snapshots_get(
        group=group, variables=variables, after=None, max_age=SIMULATION_MAX_AGE, limit=MAX_SIMULATION_ROWS
    )
    complete = np.asarray(snapshots.complete, dtype=bool)
    if not complete.any():
        return np.empty((0, len(variables)))
    times = snapshots.times_ns[complete]
    hours = (times - times[0]) / 3.6e12
    keep = (hours >= window_h[0]) & (hours <= window_h[1])
    return snapshots.matrix[complete][keep]


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from scipy import stats

    if values.size < 3 or float(np.std(values)) == 0.0:
        hist, edges = np.histogram(values, bins=grid.size - 1, range=(grid[0], grid[-1]), density=True)
        return np.append(hist, hist[-1] if hist.size else 0.0)
    return stats.gaussian_kde(values)(grid)


def densities(
    reference: np.ndarray, test: np.ndarray, variables: Sequence[str], points: int = 160
) -> list[dict[str, Any]]:
    """Reference and test densities per variable on a shared grid (Gaussian KDE, histogram if constant)."""
    out = []
    for j, name in enumerate(variables):
        both = np.concatenate([reference[:, j], test[:, j]])
        low, high = float(both.min()), float(both.max())
        pad = (high - low) * 0.1 or max(abs(low) * 0.05, 1e-6)
        grid = np.linspace(low - pad, high + pad, points)
        out.append(
            {
                "variable": name,
                "grid": grid.tolist(),
                "reference": _density(reference[:, j], grid).tolist(),
                "test": _density(test[:, j], grid).tolist(),
            }
        )
    return out


def drift_analyse(
    *,
    detector_key: str,
    params: Mapping[str, Any],
    variables: Sequence[str],
    reference: Sequence[GroupKey],
    test: GroupKey,
    window_h: tuple[float, float],
) -> DriftAnalysis:
    """Compare the test batch's window with the same window of the reference batches.

    With two or more reference batches the verdict uses the drift app's reference-calibrated rule
    (``apps.drift.calibration``): thresholds from how much the reference batches differ among
    themselves; with one, the detector's nominal threshold.
    """
    from apps.drift.calibration import calibrate, calibrated_detect
    from apps.drift.detectors import DriftError, build_detector

    if not variables:
        raise ValidationFailed("choose at least one variable", details={"variables": []})
    if not reference:
        raise ValidationFailed("choose at least one reference batch", details={"reference": []})
    if test in reference:
        raise ValidationFailed("the test batch must not be a reference batch", details={"test": test.batch_id})
    low, high = float(window_h[0]), float(window_h[1])
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
        raise ValidationFailed("window: need 0 ≤ start < end (hours)", details={"window": [low, high]})
    try:
        detector = build_detector(detector_key, params)
    except DriftError as exc:
        raise ValidationFailed(str(exc), details={"parameters": str(exc)}) from exc
    names = tuple(dict.fromkeys(variables))
    labels = {group: _label(group) for group in (*reference, test)}
    windows = {labels[group]: _window_rows(group, names, (low, high)) for group in (*reference, test)}
    for label, rows in windows.items():
        if rows.shape[0] < max(detector.min_rows, 2):
            raise ValidationFailed(
                f"{label}: {rows.shape[0]} complete rows in {low:g}–{high:g} h;"
                f" {detector.label} needs {detector.min_rows}",
                details={"batch": label, "rows": int(rows.shape[0])},
            )
    reference_labels = [labels[g] for g in reference]
    reference_rows = np.vstack([windows[b] for b in reference_labels])
    test_rows = windows[labels[test]]
    try:
        if len(reference_labels) >= 2:
            calibration = calibrate(
                detector,
                {b: windows[b] for b in reference_labels},
                components=list(names) if detector.per_variable else ["all variables"],
            )
            result = calibrated_detect(detector, calibration, reference_rows, test_rows, variables=names)
            calibrated = True
        else:
            result = detector.detect(reference_rows, test_rows, variables=names)
            calibrated = False
    except DriftError as exc:
        raise ValidationFailed(str(exc), details={"detector": detector_key}) from exc
    return DriftAnalysis(
        result=result,
        calibrated=calibrated,
        reference_batches=reference_labels,
        test_batch=labels[test],
        window_h=(low, high),
        variables=list(names),
        units=variable_units(project_name=test.project_name, device_id=test.device_id),
        reference=reference_rows,
        test=test_rows,
        densities=densities(reference_rows, test_rows, names),
    )


def _label(group: GroupKey) -> str:
    return f"{group.device_id}/{group.batch_id}"


def batch_hours(*, group: GroupKey) -> float:
    """Length of a batch in hours (for the window slider), from the series index."""
    infos = series_list(collection=Collection.RAW, where=group_filter(group))
    if not infos:
        return 0.0
    first = min(i.first_time for i in infos)
    last = max(i.last_time for i in infos)
    return (last - first).total_seconds() / 3600


def training_batches(version: Any) -> list[str]:
    """The batch IDs a version was trained on (descriptor ``experiments_ID`` → ``batch_<n>``)."""
    config = version.descriptor or {}
    experiments = (config.get("training_information") or {}).get("experiments_ID") or []
    if isinstance(experiments, str):
        experiments = [e.strip() for e in experiments.split(",") if e.strip()]
    return [f"batch_{e}" for e in experiments]


def datetime_label(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"
