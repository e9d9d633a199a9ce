"""The one scoring path: a model spec run as it runs in the plant, over a window of one group.

A soft sensor in the plant is more than a model file: it is a version (its ``ModelSpec``) plus the way a
deployment runs it (``ScoringConfig``: which project variable feeds each feature, how old an input may be,
the lab bias update). Together they are an ``Estimator``. ``estimates_score`` runs one over a window and
returns, per scored row: the raw prediction, the bias in force, the corrected estimate and the validity
verdict, plus why the other rows were skipped. The live pipeline, backfill, the simulation and divergence
pages, drift's model-disagreement detector and training's evaluation all call it; none rebuilds it.

The steps, each written once:

1. **Snapshots**: as-of rows of the estimator's variables at every raw timestamp of the group in the window
   (``apps.tsdb``); derived inputs such as ``batch_age`` are computed there, not read.
2. **Skips**: a row with a missing or stale input is not scored; its reason is counted (``skip_reason_key``).
3. **Predict**: one batched call through the predictor (``predictors``: REST or in process).
4. **Bias**: per output, the lab samples of the group known by the end of the window are folded into the bias
   (``bias``); the raw estimate in force at each sample time comes from the window, from the caller's memo
   (the pipeline keeps one per group; it also holds the previous window's last row, for a sample that falls
   between two windows) or from the stored estimates. Scoring a window in chunks therefore gives the same
   bias as scoring it at once.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import numpy as np
from django.conf import settings

from apps.registry.spec import BiasSpec, ModelSpec
from apps.tsdb.backends import get_backend
from apps.tsdb.types import (
    LAB_SOURCE,
    PREDICTION_SOURCE,
    Collection,
    GroupKey,
    PointBatch,
    SeriesFilter,
    SeriesKey,
    SnapshotSet,
    from_ns,
)

from .bias import BiasParams, bias_at, bias_levels, raw_in_force
from .predictors import Predictor, predictor_get

NS = 1_000_000_000
#: Default maximum input age when a caller scores a version outside any deployment (the deployment default).
DEFAULT_MAX_INPUT_AGE_SECONDS = 3600

_AGE = re.compile(r" \(age [^)]*\)")


def skip_reason_key(reason: str | None) -> str:
    """A countable reason: ``"stale: x (age 4000 s)"`` → ``"stale: x"`` (the ages differ row by row)."""
    return _AGE.sub("", reason or "incomplete")


# ------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class BiasSettings(BiasSpec):
    """The lab bias update an estimator runs with: a version's parameters (``BiasSpec``), whether a batch
    starts from zero, and where they come from (a deployment's configuration or the version's own)."""

    reset_each_batch: bool = True
    source: str = ""

    @classmethod
    def of(cls, params: Any, *, reset_each_batch: bool = True, source: str = "") -> BiasSettings:
        """From anything holding the five parameters (a ``BiasSpec``, a deployment's ``BiasCorrection``)."""
        return cls(
            alpha=float(params.alpha),
            lab_delay_seconds=int(params.lab_delay_seconds),
            max_lab_age_seconds=int(params.max_lab_age_seconds),
            lab_min=params.lab_min,
            lab_max=params.lab_max,
            reset_each_batch=reset_each_batch,
            source=source,
        )

    @classmethod
    def from_spec(cls, bias: BiasSpec) -> BiasSettings:
        return cls.of(bias, source="trained with the version")

    def params(self, *, initial_bias: float = 0.0) -> BiasParams:
        return BiasParams(
            alpha=self.alpha,
            lab_delay_ns=self.lab_delay_seconds * NS,
            max_age_ns=self.max_lab_age_seconds * NS,
            lab_min=self.lab_min,
            lab_max=self.lab_max,
            initial_bias=initial_bias,
        )

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "reset_each_batch": self.reset_each_batch, "source": self.source}


@dataclass(frozen=True)
class ScoringConfig:
    """How a deployment runs a version: input mapping, maximum input age, lab bias update (None: raw only)."""

    input_mapping: Mapping[str, str] = field(default_factory=dict)
    max_input_age_seconds: int = DEFAULT_MAX_INPUT_AGE_SECONDS
    bias: BiasSettings | None = None
    #: For a shadow deployment, the version its champion runs now: the shadow scores only while it runs another
    #: one, since estimates are told apart by their version tag.
    champion_version_id: int | None = None

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.max_input_age_seconds)


@dataclass(frozen=True)
class Estimator:
    """A version and the way it is run: what every estimate of the platform is computed by."""

    spec: ModelSpec
    config: ScoringConfig

    def variable(self, feature: str) -> str:
        """The project variable feeding ``feature`` (by name unless mapped)."""
        return str(self.config.input_mapping.get(feature) or feature)

    @cached_property
    def variables(self) -> tuple[str, ...]:
        """The variable of each feature, in the model's order (two features may read the same variable)."""
        return tuple(self.variable(f) for f in self.spec.feature_names)

    @cached_property
    def snapshot_variables(self) -> tuple[str, ...]:
        """The distinct variables a snapshot reads, first-use order."""
        return tuple(dict.fromkeys(self.variables))

    @cached_property
    def columns(self) -> np.ndarray:
        """Each feature's column in a snapshot matrix."""
        return np.array([self.snapshot_variables.index(v) for v in self.variables], dtype=int)

    def is_input(self, key: SeriesKey) -> bool:
        """A raw series feeding the estimator's snapshots (lab samples are targets, never inputs)."""
        return key.source != LAB_SOURCE and key.observed_property in self.snapshot_variables

    def is_output(self, key: SeriesKey) -> bool:
        """A prediction series written by the estimator's version."""
        return (
            key.model_id == self.spec.model_tag
            and key.version == self.spec.version_tag
            and key.observed_property in self.spec.output_names
        )

    def output_series(self, group: GroupKey, output: str) -> SeriesKey:
        """The predictions series of ``output`` in ``group`` (STAMM tags: model ID lower case, version number)."""
        return SeriesKey(
            group.project_name,
            group.device_id,
            group.batch_id,
            PREDICTION_SOURCE,
            output,
            self.spec.model_tag,
            self.spec.version_tag,
        )


def estimator_for_spec(
    spec: ModelSpec,
    *,
    input_mapping: Mapping[str, str] | None = None,
    max_input_age_seconds: int = DEFAULT_MAX_INPUT_AGE_SECONDS,
    bias: BiasSettings | None | bool = True,
) -> Estimator:
    """An estimator for a version outside a deployment: ``bias=True`` uses the version's trained bias update
    (if it has one), ``False``/None none, or the given settings."""
    if bias is True:
        settings_ = BiasSettings.from_spec(spec.bias) if spec.bias is not None else None
    elif bias is False:
        settings_ = None
    else:
        settings_ = bias
    return Estimator(
        spec=spec,
        config=ScoringConfig(
            input_mapping=dict(input_mapping or {}), max_input_age_seconds=max_input_age_seconds, bias=settings_
        ),
    )


# ---------------------------------------------------------------------------------------------- results


@dataclass
class OutputBias:
    """What the bias update did for one output over the window."""

    used: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    final: float = 0.0


@dataclass
class Estimates:
    """The estimator over one window of one group: every snapshot, and for the complete ones the estimates.

    ``raw``, ``bias`` and ``corrected`` are (rows scored × outputs); ``validity`` has one verdict per row
    scored (``{"verdict": "ok"}`` or ``{"verdict": "out_of_range", "inputs": [...]}``).
    """

    estimator: Estimator
    group: GroupKey
    snapshots: SnapshotSet
    complete: np.ndarray
    skipped: Counter
    inputs: np.ndarray
    raw: np.ndarray
    bias: np.ndarray
    validity: list[dict[str, Any]]
    outputs: tuple[str, ...]
    bias_applied: bool = False
    bias_report: dict[str, OutputBias] = field(default_factory=dict)
    bias_memo: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    detect_ms: float = 0.0
    infer_ms: float = 0.0

    @property
    def times_ns(self) -> np.ndarray:
        """Times of the rows scored."""
        return self.snapshots.times_ns[self.complete].astype(np.int64)

    @property
    def corrected(self) -> np.ndarray:
        return self.raw + self.bias

    @property
    def rows(self) -> int:
        return int(self.raw.shape[0])

    @property
    def predictions(self) -> int:
        """Points this window stores (rows scored × outputs)."""
        return int(self.raw.size)

    def verdicts(self) -> np.ndarray:
        return np.array([str(v.get("verdict") or "ok") for v in self.validity], dtype=object)

    def points(self) -> PointBatch | None:
        """Columnar prediction points: one series per output at each scored row's time.

        ``value`` is the raw model output, ``corrected_value`` the estimate as deployed (raw + bias in force;
        equal to the raw value when no bias update runs) and ``validity`` the verdict.
        """
        if not self.raw.size:
            return None
        rows, outputs = self.raw.shape
        series = [self.estimator.output_series(self.group, name) for name in self.outputs]
        verdicts = self.verdicts()
        return PointBatch(
            collection=Collection.PREDICTIONS,
            series=series,
            series_index=np.repeat(np.arange(outputs, dtype=np.int32), rows),
            times_ns=np.tile(self.times_ns, outputs),
            values=self.raw.T.reshape(-1).astype(np.float64),
            fields={
                "validity": np.tile(verdicts, outputs),
                "corrected_value": self.corrected.T.reshape(-1).astype(np.float64),
            },
        )


# ---------------------------------------------------------------------------------------------- scoring


def snapshots_read(
    estimator: Estimator, group: GroupKey, *, after_ns: int | None, until_ns: int | None, limit: int | None
) -> SnapshotSet:
    """As-of snapshots of the estimator's variables in (after, until] (derived inputs computed by the store)."""
    return get_backend().snapshots(
        group=group,
        variables=estimator.snapshot_variables,
        after=from_ns(after_ns) if after_ns is not None else None,
        until=from_ns(until_ns) if until_ns is not None else None,
        max_age=estimator.config.max_age,
        limit=limit,
    )


@dataclass(frozen=True)
class ScoreRequest:
    """One window of one group to score: what ``estimates_score_many`` takes per item."""

    estimator: Estimator
    group: GroupKey
    snapshots: SnapshotSet
    bias_memo: Mapping[str, Any] | None = None
    initial_bias: float = 0.0
    detect_ms: float = 0.0


def estimates_score(
    *,
    estimator: Estimator,
    group: GroupKey,
    after_ns: int | None = None,
    until_ns: int | None = None,
    limit: int | None = None,
    predictor: Predictor | None = None,
    snapshots: SnapshotSet | None = None,
    bias_memo: Mapping[str, Any] | None = None,
    initial_bias: float = 0.0,
) -> Estimates:
    """Score ``estimator`` on the snapshots of ``group`` in (after, until] (at most ``limit`` rows).

    ``snapshots`` may be given when the caller already read them (the pipeline reads them inside its
    consistent read). ``bias_memo`` is what an earlier window of the same group returned as
    ``Estimates.bias_memo``; without it the raw estimates at lab times before the window are read back
    from the stored estimates.
    """
    started = time.perf_counter()
    if snapshots is None:
        snapshots = snapshots_read(estimator, group, after_ns=after_ns, until_ns=until_ns, limit=limit)
    request = ScoreRequest(
        estimator, group, snapshots, bias_memo, initial_bias, detect_ms=(time.perf_counter() - started) * 1000
    )
    result = estimates_score_many([request], predictor=predictor)[0]
    if isinstance(result, Exception):
        raise result
    return result


def estimates_score_many(
    requests: Sequence[ScoreRequest], *, predictor: Predictor | None = None
) -> list[Estimates | Exception]:
    """Score many windows (of many groups and deployments) with ONE predictor call per model version.

    This is ``estimates_score`` for a batch: the pipeline scores the pending groups of every deployment in
    one task, and a hundred deployments of one version then cost one request to the registry, not a hundred.
    The rows of one version's windows are stacked into one matrix (a soft sensor scores each snapshot on its
    own, so stacking changes no estimate) and the answer is split back. Each window's result is its
    ``Estimates`` or the exception that stopped it (a failed call fails every window of that version only).
    """
    results: list[Estimates | Exception | None] = [None] * len(requests)
    pending: dict[int, list[tuple[int, Estimates]]] = {}
    for i, request in enumerate(requests):
        estimates = _estimates_begin(request)
        if estimates.inputs.shape[0]:
            pending.setdefault(estimates.estimator.spec.version_id, []).append((i, estimates))
        else:
            results[i] = estimates
    chosen = predictor or (predictor_get() if pending else None)
    for items in _calls(pending):
        spec = items[0][1].estimator.spec
        X = np.vstack([estimates.inputs for _, estimates in items])
        started = time.perf_counter()
        try:
            prediction = chosen.predict(spec, X)  # type: ignore[union-attr]
            values = np.asarray(prediction.values, dtype=float).reshape(X.shape[0], -1)
        except Exception as exc:  # noqa: BLE001 - every window of this version fails with the reason
            for i, _ in items:
                results[i] = exc
            continue
        infer_ms = (time.perf_counter() - started) * 1000
        row = 0
        for i, estimates in items:
            rows = estimates.inputs.shape[0]
            estimates.raw = values[row : row + rows]
            estimates.bias = np.zeros_like(estimates.raw)
            estimates.validity = list(prediction.validity[row : row + rows])
            estimates.outputs = tuple(prediction.outputs)
            estimates.attempts = prediction.attempts
            estimates.infer_ms = infer_ms
            row += rows
            try:
                if estimates.estimator.config.bias is not None:
                    _apply_bias(estimates, initial_bias=requests[i].initial_bias)
            except Exception as exc:  # noqa: BLE001 - this window fails, the others of the version stand
                results[i] = exc
                continue
            results[i] = estimates
    assert all(r is not None for r in results), "every window gets its estimates or its exception"
    return results  # type: ignore[return-value]


def _calls(pending: Mapping[int, list[tuple[int, Estimates]]]) -> list[list[tuple[int, Estimates]]]:
    """The windows of each version packed into calls of at most ``STAMM_PIPELINE_CHUNK`` rows (a window
    larger than that is a call of its own, as when it is scored alone)."""
    cap = max(1, int(settings.STAMM_PIPELINE_CHUNK))
    calls: list[list[tuple[int, Estimates]]] = []
    for items in pending.values():
        current: list[tuple[int, Estimates]] = []
        rows = 0
        for item in items:
            n = item[1].inputs.shape[0]
            if current and rows + n > cap:
                calls.append(current)
                current, rows = [], 0
            current.append(item)
            rows += n
        calls.append(current)
    return calls


def _estimates_begin(request: ScoreRequest) -> Estimates:
    """The window's rows before prediction: which snapshots are complete, their input matrix, the skips."""
    estimator, snapshots = request.estimator, request.snapshots
    spec = estimator.spec
    complete = np.asarray(snapshots.complete, dtype=bool)
    skipped = Counter(skip_reason_key(snapshots.reasons[i]) for i in np.flatnonzero(~complete))
    outputs = spec.output_names
    if complete.any():
        X = snapshots.matrix[complete][:, estimator.columns]
    else:
        X = np.empty((0, len(spec.features)))
    empty = np.empty((0, len(outputs)))
    return Estimates(
        estimator=estimator,
        group=request.group,
        snapshots=snapshots,
        complete=complete,
        skipped=skipped,
        inputs=X,
        raw=empty,
        bias=empty.copy(),
        validity=[],
        outputs=outputs,
        detect_ms=request.detect_ms,
        bias_memo=dict(request.bias_memo or {}),
    )


# ---------------------------------------------------------------------------------------------- the bias


def _lab_samples(group: GroupKey, output: str, *, until_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The group's lab samples of ``output`` at or before ``until_ns`` (ascending)."""
    backend = get_backend()
    infos = backend.list_series(
        collection=Collection.RAW,
        where=SeriesFilter(
            project_name=group.project_name,
            device_id=group.device_id,
            batch_id=group.batch_id,
            source=LAB_SOURCE,
            observed_property=output,
        ),
        end=from_ns(until_ns),
    )
    if not infos:
        return np.empty(0, dtype=np.int64), np.empty(0)
    data = backend.read(
        collection=Collection.RAW, series=infos[0].series, start=infos[0].first_time, end=from_ns(until_ns)
    )
    return np.asarray(data.times_ns, dtype=np.int64), np.asarray(data.values, dtype=float)


def _stored_raw_at(estimator: Estimator, group: GroupKey, output: str, sample_ns: int) -> float | None:
    """The stored raw estimate in force at ``sample_ns`` (no older than the maximum input age), or None."""
    window = estimator.config.max_input_age_seconds * NS
    data = get_backend().read(
        collection=Collection.PREDICTIONS,
        series=estimator.output_series(group, output),
        start=from_ns(sample_ns - window),
        end=from_ns(sample_ns),
    )
    return float(data.values[-1]) if len(data) and np.isfinite(data.values[-1]) else None


def _apply_bias(estimates: Estimates, *, initial_bias: float) -> None:
    """Fill ``estimates.bias`` with the bias in force at each scored row, output by output."""
    estimator = estimates.estimator
    settings_ = estimator.config.bias
    assert settings_ is not None
    params = settings_.params(initial_bias=initial_bias)
    times = estimates.times_ns
    first, last = int(times[0]), int(times[-1])
    max_gap = estimator.config.max_input_age_seconds * NS
    memo_outputs = dict(estimates.bias_memo.get("outputs") or {})
    # The previous window's last scored row: the raw estimate in force at a lab sample that falls between
    # that row and this window's first one (nothing else remembers it, and it may not be stored yet).
    previous = estimates.bias_memo.get("last") or {}
    if estimates.bias_memo.get("version") not in (None, estimator.spec.version_id):
        memo_outputs, previous = {}, {}  # remembered raw estimates of another version are not this version's
    previous_ns = previous.get("time_ns")
    for j, output in enumerate(estimates.outputs):
        lab_t, lab_v = _lab_samples(estimates.group, output, until_ns=last)
        memo = {int(k): v for k, v in (memo_outputs.get(output) or {}).items()}
        # The raw estimate in force at every sample time up to the window's end: from this window, from the
        # memo, or from the stored estimates. All of them go into the memo, so the next window (whose rows
        # the later results change) never needs this window's estimates to have been stored first.
        raw_at = np.full(lab_t.shape[0], np.nan)
        in_window = raw_in_force(times, estimates.raw[:, j], lab_t, max_gap_ns=max_gap)
        for i, sample_ns in enumerate(lab_t.tolist()):
            if sample_ns >= first and np.isfinite(in_window[i]):
                value: float | None = float(in_window[i])
            elif sample_ns in memo:
                value = memo[sample_ns]
            elif previous_ns is not None and 0 <= sample_ns - previous_ns <= max_gap and sample_ns < first:
                value = (previous.get("raw") or {}).get(output)
            else:
                value = _stored_raw_at(estimator, estimates.group, output, sample_ns)
            memo[sample_ns] = value
            raw_at[i] = np.nan if value is None else value
        known = lab_t + params.lab_delay_ns <= last  # a result not known by the window's end changes none of it
        steps = bias_levels(lab_t[known], lab_v[known], raw_at[known], params)
        estimates.bias[:, j] = bias_at(times, steps)
        estimates.bias_report[output] = OutputBias(steps.used, steps.rejected, steps.updates, steps.final)
        memo_outputs[output] = {str(k): v for k, v in memo.items()}
    estimates.bias_applied = True
    last_raw = {
        name: (float(value) if np.isfinite(value) else None)
        for name, value in zip(estimates.outputs, estimates.raw[-1].tolist(), strict=True)
    }
    estimates.bias_memo = {
        "version": estimator.spec.version_id,
        "outputs": memo_outputs,
        "last": {"time_ns": last, "raw": last_raw},
    }
