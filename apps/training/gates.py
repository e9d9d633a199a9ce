"""Promotion gates: what a candidate must show on the holdout before an alias may point at it.

Every gate judges the estimator **as deployed** (the model plus its lab bias update, scored through the
platform's scoring path), because that is what runs in the plant. Gates come from the run's configuration:
- ``r2_min``: holdout R² at least this (None: not checked);
- ``beats_persistence``: lower RMSE than delayed-lab persistence on the rows where both have a value;
- ``not_worse_than_production``: RMSE not above the current ``production`` estimator's on the holdout rows
  both scored, times (1 + ``production_tolerance``).

Each verdict says whether it passed and by how much (``margin`` > 0 means room to spare, < 0 the shortfall).
``passed`` is None when a gate could not be evaluated (no lab samples, no production version able to
score the holdout): that is reported, and it does not block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.common.errors import ValidationFailed

DEFAULT_GATES: dict[str, Any] = {
    "r2_min": 0.9,
    "beats_persistence": True,
    "not_worse_than_production": True,
    "production_tolerance": 0.0,
}


def gates_validate(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = dict(spec or {})
    unknown = set(spec) - set(DEFAULT_GATES)
    if unknown:
        raise ValidationFailed(
            f"gates: unknown gate(s) {', '.join(sorted(unknown))}", details={"gates": sorted(unknown)}
        )
    result = {**DEFAULT_GATES, **spec}
    if result["r2_min"] is not None:
        try:
            result["r2_min"] = float(result["r2_min"])
        except (TypeError, ValueError):
            raise ValidationFailed(
                "gates.r2_min: must be a number or null", details={"gates.r2_min": spec.get("r2_min")}
            )
        if not -1e9 < result["r2_min"] <= 1.0:
            raise ValidationFailed("gates.r2_min: must be at most 1", details={"gates.r2_min": result["r2_min"]})
    for key in ("beats_persistence", "not_worse_than_production"):
        if not isinstance(result[key], bool):
            raise ValidationFailed(f"gates.{key}: must be true or false", details={f"gates.{key}": result[key]})
    try:
        result["production_tolerance"] = float(result["production_tolerance"])
    except (TypeError, ValueError):
        raise ValidationFailed(
            "gates.production_tolerance: must be a number",
            details={"gates.production_tolerance": spec.get("production_tolerance")},
        )
    if result["production_tolerance"] < 0:
        raise ValidationFailed(
            "gates.production_tolerance: must not be negative",
            details={"gates.production_tolerance": result["production_tolerance"]},
        )
    return result


def _verdict(gate: str, passed: bool | None, message: str, **numbers: Any) -> dict[str, Any]:
    return {"gate": gate, "passed": passed, "message": message, **numbers}


def gate_verdicts(
    *,
    gates: Mapping[str, Any],
    candidate: Mapping[str, Any],
    production: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """One verdict per configured gate for a candidate's report (``evaluation.estimator_report``), judging
    the estimator as deployed: the model with its bias update.

    ``production`` is ``{"version": n, "rmse": x, "candidate_rmse": y, "rows": k}`` when the production
    version scored the holdout, ``{"version": n, "error": "..."}`` when it could not, None when there is none.
    """
    verdicts = []
    r2 = candidate["as_deployed"]["overall"].get("r2")
    if gates.get("r2_min") is not None:
        threshold = float(gates["r2_min"])
        if r2 is None:
            verdicts.append(
                _verdict(
                    "r2_min", False, "R² undefined on the holdout (constant target or no rows)", threshold=threshold
                )
            )
        else:
            margin = r2 - threshold
            passed = margin >= 0
            message = (
                f"R² {r2:.4f} ≥ {threshold:.4f} (margin {margin:+.4f})"
                if passed
                else f"R² {r2:.4f} < {threshold:.4f}: short by {-margin:.4f}"
            )
            verdicts.append(_verdict("r2_min", passed, message, value=r2, threshold=threshold, margin=round(margin, 6)))
    if gates.get("beats_persistence"):
        same_rows = candidate.get("on_persistence_rows") or {}
        persistence = same_rows.get("persistence") or {}
        ours = same_rows.get("as_deployed") or {}
        if not persistence.get("n") or persistence.get("rmse") is None or ours.get("rmse") is None:
            verdicts.append(_verdict("beats_persistence", None, "not evaluated: no lab result is known on the holdout"))
        else:
            p, c = float(persistence["rmse"]), float(ours["rmse"])
            margin = p - c
            passed = c < p
            message = (
                f"RMSE as deployed {c:.4f} < persistence {p:.4f} on {persistence['n']} rows"
                f" (better by {margin:.4f})"
                if passed
                else f"RMSE as deployed {c:.4f} ≥ persistence {p:.4f} on {persistence['n']} rows:"
                f" worse by {-margin:.4f}"
            )
            verdicts.append(
                _verdict("beats_persistence", passed, message, value=c, threshold=p, margin=round(margin, 6))
            )
    if gates.get("not_worse_than_production"):
        tolerance = float(gates.get("production_tolerance") or 0.0)
        if production is None:
            verdicts.append(
                _verdict("not_worse_than_production", True, "no production version yet: nothing to compare with")
            )
        elif production.get("error"):
            verdicts.append(
                _verdict(
                    "not_worse_than_production",
                    None,
                    f"not evaluated: production version {production.get('version')} "
                    f"could not score the holdout ({production['error']})",
                )
            )
        else:
            prod, c = float(production["rmse"]), float(production["candidate_rmse"])
            limit = prod * (1.0 + tolerance)
            margin = limit - c
            passed = c <= limit
            message = (
                f"RMSE {c:.4f} ≤ production v{production['version']} {prod:.4f}"
                + (f" (+{tolerance:.0%} tolerance)" if tolerance else "")
                + f" on {production['rows']} rows"
                if passed
                else f"RMSE {c:.4f} > production v{production['version']} {prod:.4f}"
                + (f" (+{tolerance:.0%} tolerance)" if tolerance else "")
                + f": worse by {-margin:.4f}"
            )
            verdicts.append(
                _verdict(
                    "not_worse_than_production", passed, message, value=c, threshold=limit, margin=round(margin, 6)
                )
            )
    return verdicts


def overall_pass(verdicts: list[Mapping[str, Any]]) -> bool:
    """Passed when no gate failed (gates that could not be evaluated do not block)."""
    return all(v.get("passed") is not False for v in verdicts)


def failure_summary(verdicts: list[Mapping[str, Any]]) -> str:
    return "; ".join(f"{v['gate']}: {v['message']}" for v in verdicts if v.get("passed") is False)
