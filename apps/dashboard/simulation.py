"""Simulation assessment and model divergence: versions scored over a stored batch by the orchestrator's
simulation (``apps.orchestrator.simulation.simulation_run``, the service behind the simulation API too), and
what a modeler judges them by: lab samples matched to rows, residuals, row flags, the Excel workbook, and
the pairwise disagreement of several versions. Nothing here writes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed
from apps.orchestrator.simulation import MAX_SIMULATION_ROWS, VersionSimulation, simulation_run
from apps.registry.spec import ModelSpec
from apps.tsdb.selectors import series_read
from apps.tsdb.types import LAB_SOURCE, Collection, Downsample, GroupKey, from_ns

from .models import PointFlag
from .selectors import LAB_MATCH_TOLERANCE, group_series, point_flag_list, variable_units
from .soft_sensors import bias_text

#: A lab residual larger than this many residual SDs of the batch flags the row.
RESIDUAL_FLAG_SD = 2.0
#: Most flags people set that one simulation lists.
MAX_FLAGS = 500


@dataclass
class SimulationAssessment:
    """A version's simulation over a stored batch, with each lab sample matched to its nearest row."""

    simulation: VersionSimulation
    units: dict[str, str]
    lab: np.ndarray  # rows × outputs, NaN where no lab sample matched
    flags: list[PointFlag] = field(default_factory=list)

    # -- what was scored ----------------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        return self.simulation.spec

    @property
    def group(self) -> GroupKey:
        return self.simulation.group

    @property
    def times_ns(self) -> np.ndarray:
        return self.simulation.estimates.times_ns

    @property
    def outputs(self) -> list[str]:
        return list(self.simulation.estimates.outputs)

    @property
    def features(self) -> list[str]:
        return list(self.spec.feature_names)

    @property
    def variables(self) -> list[str]:
        return list(self.simulation.estimator.variables)

    @property
    def inputs(self) -> np.ndarray:
        return self.simulation.estimates.inputs

    @property
    def raw(self) -> np.ndarray:
        return self.simulation.estimates.raw

    @property
    def bias(self) -> np.ndarray:
        return self.simulation.estimates.bias

    @property
    def estimates(self) -> np.ndarray:
        """The estimate as deployed: raw + bias in force (the raw estimate without a bias update)."""
        return self.simulation.estimates.corrected

    @property
    def validity(self) -> list[dict[str, Any]]:
        return self.simulation.estimates.validity

    @property
    def rows(self) -> int:
        return self.simulation.estimates.rows

    @property
    def skipped(self) -> int:
        return int(sum(self.simulation.estimates.skipped.values()))

    @property
    def skipped_reasons(self) -> dict[str, int]:
        return dict(self.simulation.estimates.skipped)

    @property
    def truncated(self) -> bool:
        return self.simulation.truncated

    def configuration_text(self) -> str:
        """How the version was run: whose configuration, maximum input age, the bias update."""
        estimator = self.simulation.estimator
        source = (
            f"as deployment {self.simulation.deployment_name} runs it"
            if self.simulation.deployment_name
            else "with no deployment (feature names as variables)"
        )
        bias = estimator.config.bias
        update = f"bias update {bias_text(bias)} ({bias.source})" if bias is not None else "no bias update (raw model)"
        return f"Scored {source}; maximum input age {estimator.config.max_input_age_seconds} s; {update}."

    # -- judged against the lab -----------------------------------------------------------------------
    @property
    def residuals(self) -> np.ndarray:
        return self.lab - self.estimates

    def residual_sd(self) -> np.ndarray:
        r = self.residuals
        out = np.full(r.shape[1], np.nan)
        for j in range(r.shape[1]):
            finite = r[:, j][np.isfinite(r[:, j])]
            if finite.size >= 3:
                out[j] = float(finite.std(ddof=1))
        return out

    def row_flags(self) -> list[list[str]]:
        """Computed flags of each row: inputs out of range, estimate outside the output's declared range, a lab
        residual beyond ``RESIDUAL_FLAG_SD`` SDs, a person's flag near the row's time."""
        ranges = {o.name: (o.low, o.high) for o in self.spec.outputs}
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
                low, high = ranges.get(name, (None, None))
                value = self.estimates[i, j]
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
        """One row per scored snapshot: time, per output raw / bias / estimate / lab / residual, inputs,
        validity and flags (``pred:`` is the estimate as deployed)."""
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
                row[f"raw:{name}"] = round(float(self.raw[i, j]), 4)
                row[f"bias:{name}"] = round(float(self.bias[i, j]), 4)
                row[f"pred:{name}"] = round(float(self.estimates[i, j]), 4)
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

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per output: lab samples matched, and MAE / RMSE / bias (lab − estimate) of the estimate and of the raw
        model."""
        out = {}
        for j, name in enumerate(self.outputs):
            item: dict[str, Any] = {}
            for prefix, values in (("", self.estimates[:, j]), ("raw_", self.raw[:, j])):
                residual = self.lab[:, j] - values
                finite = residual[np.isfinite(residual)]
                item["lab_samples"] = int(finite.size)
                item[f"{prefix}mae"] = float(np.mean(np.abs(finite))) if finite.size else None
                item[f"{prefix}rmse"] = float(np.sqrt(np.mean(finite**2))) if finite.size else None
                item[f"{prefix}bias"] = float(np.mean(finite)) if finite.size else None
            out[name] = item
        return out


def _lab_matched(simulation: VersionSimulation, group_contents: Any) -> np.ndarray:
    """Each lab sample of each output at its nearest scored row (within ``LAB_MATCH_TOLERANCE``)."""
    estimates = simulation.estimates
    times = estimates.times_ns
    lab = np.full(estimates.raw.shape, np.nan)
    infos = {i.series.observed_property: i for i in group_contents.raw if i.series.source == LAB_SOURCE}
    tolerance_ns = int(LAB_MATCH_TOLERANCE.total_seconds() * 1e9)
    for j, name in enumerate(estimates.outputs):
        info = infos.get(name)
        if info is None or not times.size:
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
        pos = np.clip(np.searchsorted(times, data.times_ns), 1, max(1, times.size - 1))
        left = np.maximum(pos - 1, 0)
        pos = np.minimum(pos, times.size - 1)
        nearest = np.where(np.abs(times[left] - data.times_ns) <= np.abs(times[pos] - data.times_ns), left, pos)
        ok = np.abs(times[nearest] - data.times_ns) <= tolerance_ns
        lab[nearest[ok], j] = data.values[ok]
    return lab


def bias_choice(value: Any) -> bool:
    """The "Bias update" control (and the export's ``bias`` parameter): ``on`` (the default) or ``off``."""
    if value in (None, "", "on"):
        return True
    if value == "off":
        return False
    raise ValidationFailed("bias: expected on or off", details={"bias": value})


def simulation_assess(*, spec: ModelSpec, group: GroupKey, bias: bool = True) -> SimulationAssessment:
    """Simulate ``spec`` over the batch (the orchestrator's simulation, as the API does) and match lab samples
    and people's flags to its rows."""
    simulation = simulation_run(spec=spec, group=group, bias=bias)
    times = simulation.estimates.times_ns
    flags = sorted(
        point_flag_list(
            group=group,
            start=from_ns(int(times[0])) - LAB_MATCH_TOLERANCE,
            end=from_ns(int(times[-1])) + LAB_MATCH_TOLERANCE,
            limit=MAX_FLAGS,
        ),
        key=lambda f: (f.time, f.pk),
    )
    return SimulationAssessment(
        simulation=simulation,
        units=variable_units(project_name=group.project_name, device_id=group.device_id),
        lab=_lab_matched(simulation, group_series(group=group)),
        flags=flags,
    )


def simulation_workbook(*, simulation: SimulationAssessment, user: Any = None) -> bytes:
    """The simulation as an Excel workbook: Metadata, Simulation and Flagged measurements sheets."""
    from django.utils import timezone
    from openpyxl import Workbook
    from openpyxl.styles import Font

    sim = simulation
    spec = sim.spec
    estimator = sim.simulation.estimator
    book = Workbook()
    meta = book.active
    meta.title = "Metadata"
    bias = estimator.config.bias
    rows: list[tuple[str, Any]] = [
        ("Generated at (UTC)", timezone.now().strftime("%Y-%m-%d %H:%M:%S")),
        ("Generated by", user.get_username() if user is not None and user.is_authenticated else ""),
        ("Project", spec.project_id),
        ("Model ID", spec.model_id),
        ("Version", spec.number),
        ("Version label", spec.label),
        ("Version status", spec.status),
        ("Batch", f"{sim.group.project_name}/{sim.group.device_id}/{sim.group.batch_id}"),
        ("Configuration of deployment", sim.simulation.deployment_name or "none"),
        ("Maximum input age (s)", estimator.config.max_input_age_seconds),
        ("Bias update", "none (raw model)" if bias is None else f"{bias_text(bias)} ({bias.source})"),
        ("Rows scored", sim.rows),
        ("Snapshots skipped", sim.skipped),
        ("Skipped reasons", "; ".join(f"{k}: {v}" for k, v in sim.skipped_reasons.items())),
        ("Truncated at", MAX_SIMULATION_ROWS if sim.truncated else ""),
        (
            "Features (model order)",
            ", ".join(f"{f} ← {v}" for f, v in zip(sim.features, sim.variables, strict=True)),
        ),
        ("Outputs", ", ".join(f"{o} [{sim.units.get(o, '')}]" for o in sim.outputs)),
    ]
    for name, stats in sim.summary().items():
        rows.append((f"{name}: lab samples matched", stats["lab_samples"]))
        rows.append((f"{name}: MAE (estimate)", stats["mae"]))
        rows.append((f"{name}: RMSE (estimate)", stats["rmse"]))
        rows.append((f"{name}: bias (lab − estimate)", stats["bias"]))
        rows.append((f"{name}: RMSE (raw model)", stats["raw_rmse"]))
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

    measured = [h for h in header if h.startswith(("raw:", "bias:", "pred:", "lab:", "res:"))]
    flagged = book.create_sheet("Flagged measurements")
    flagged.append(["row", "time", "flags", *measured])
    for row in table:
        if row["flagged"] == "yes":
            flagged.append([row["row"], row["time"], row["flags"], *(row[h] for h in measured)])
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
    estimates: np.ndarray  # rows × versions: the estimate as deployed of the first output
    output: str
    unit: str
    pairs: list[dict[str, Any]]
    configurations: list[str]


def divergence_run(*, specs: Sequence[ModelSpec], group: GroupKey, bias: bool = True) -> Divergence:
    """Simulate several versions on one batch (each as its soft sensor's deployment scores it), align them on the
    rows all of them scored and compare every pair with the seven estimators of
    ``stamm_drift.disagreement`` (coloured by their bands)."""
    from stamm_drift.disagreement import disagreement_estimators

    if len(specs) < 2:
        raise ValidationFailed("choose at least two versions to compare", details={"versions": len(specs)})
    runs = [simulation_run(spec=spec, group=group, bias=bias) for spec in specs]
    output = runs[0].estimates.outputs[0]
    for run in runs[1:]:
        if output not in run.estimates.outputs:
            raise ValidationFailed(f"{run.spec.title} does not predict {output}", details={"output": output})
    common = runs[0].estimates.times_ns
    for run in runs[1:]:
        common = np.intersect1d(common, run.estimates.times_ns)
    if common.size < 2:
        raise ValidationFailed("the versions share fewer than two scored rows on this batch")
    columns = []
    for run in runs:
        index = np.searchsorted(run.estimates.times_ns, common)
        columns.append(run.estimates.corrected[index, run.estimates.outputs.index(output)])
    matrix = np.column_stack(columns)
    labels = [run.spec.title for run in runs]
    scale = float(matrix.std()) or 1.0
    pairs = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            estimators = disagreement_estimators(matrix[:, i], matrix[:, j], scale=scale)
            pairs.append({"a": labels[i], "b": labels[j], **estimators})
    units = variable_units(project_name=group.project_name, device_id=group.device_id)
    configurations = [
        f"{run.spec.title}: "
        + (f"deployment {run.deployment_name}" if run.deployment_name else "no deployment")
        + ("" if run.bias_update else ", raw model")
        + (f", bias update {bias_text(run.estimator.config.bias)}" if run.estimator.config.bias else "")
        for run in runs
    ]
    return Divergence(group, labels, common, matrix, output, units.get(output, ""), pairs, configurations)
