"""Predictors: how the scoring path reaches a model, chosen by ``STAMM_PREDICTOR`` like ``TSDB`` picks a backend.

- ``rest`` (the default, STAMM's module boundary): one batched ``POST …/versions/<n>/predict/`` to the
  registry at ``STAMM_REGISTRY_URL`` with the pipeline's service token, retried on 5xx and connection
  errors (``registry_client``). The version number is in the URL, so the registry serves exactly the spec's
  version.
- ``local``: the registry's ``version_predict`` service in this process (no HTTP hop; model code still runs
  wherever the registry runs it).

The training evaluation always uses ``LocalPredictor(allow_offline=True)``: it judges candidates that are
registered offline until they pass their gates, and the REST endpoint never serves an offline version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from apps.registry.spec import ModelSpec

PREDICTORS = ("rest", "local")


@dataclass(frozen=True)
class Prediction:
    """What a predictor returns for ``m`` rows: values (m × outputs), one validity verdict per row."""

    values: np.ndarray
    outputs: tuple[str, ...]
    validity: list[dict[str, Any]]
    attempts: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


class Predictor(Protocol):
    name: str

    def predict(self, spec: ModelSpec, X: np.ndarray) -> Prediction: ...


class RestPredictor:
    """Over the registry's REST API (the pipeline's default: the orchestrator never imports model code)."""

    name = "rest"

    def predict(self, spec: ModelSpec, X: np.ndarray) -> Prediction:
        from .services.registry_access import registry_client

        response = registry_client().predict(
            project_id=spec.project_id,
            model_id=spec.model_id,
            number=spec.number,
            inputs={feature: X[:, j].tolist() for j, feature in enumerate(spec.feature_names)},
            rows=int(X.shape[0]),
            outputs=spec.output_names,
        )
        return Prediction(response.values, response.outputs, list(response.validity), response.attempts)


class LocalPredictor:
    """The registry's predict service in this process."""

    name = "local"

    def __init__(self, *, allow_offline: bool = False) -> None:
        self.allow_offline = allow_offline

    def predict(self, spec: ModelSpec, X: np.ndarray) -> Prediction:
        from apps.registry.services import version_predict

        # The registry behind the REST endpoint builds a row-major matrix from the request's columns; a model's
        # BLAS product over another memory layout can differ in the last bits, so both predictors use that one.
        X = np.ascontiguousarray(X, dtype=float)
        result = version_predict(spec=spec, X=X, allow_offline=self.allow_offline)
        values = np.asarray(result.predictions, dtype=float).reshape(X.shape[0], -1)
        return Prediction(values, tuple(result.outputs), list(result.validity))


def predictor_get(name: str | None = None) -> Predictor:
    """The configured predictor (``STAMM_PREDICTOR``: ``rest`` or ``local``)."""
    chosen = name or settings.STAMM_PREDICTOR
    if chosen == "rest":
        return RestPredictor()
    if chosen == "local":
        return LocalPredictor()
    raise ValueError(f"STAMM_PREDICTOR must be one of {', '.join(PREDICTORS)}, got {chosen!r}")


def verdicts(validity: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The verdict strings (``ok`` / ``out_of_range``) of a validity list, as an object array."""
    return np.array([str(v.get("verdict") or "ok") for v in validity], dtype=object)
