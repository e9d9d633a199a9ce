"""Train/holdout splits that respect time (framework-free apart from the shared error type).

Two kinds are offered:
- ``batches``: whole batches are held out (the honest test of a batch soft sensor: a new batch);
- ``chronological``: every row after a cut time is held out (``cut_fraction`` of the overall time span,
  or an explicit ``cut_time``); nothing after the cut is used for training.

Random row splits are refused: neighbouring rows of a batch are nearly identical, so a random split puts
copies of the test rows in the training set and reports an accuracy the model will never have on a new
batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed

KINDS = ("batches", "chronological")
RANDOM_REFUSAL = (
    "Random row splits are refused: consecutive rows of a batch are almost identical, so a random split "
    "leaks test rows into training and overstates accuracy. Hold out whole batches (kind=batches) or cut "
    "the timeline (kind=chronological)."
)


def split_validate(spec: Mapping[str, Any] | None, *, batches: Sequence[str]) -> dict[str, Any]:
    """The normalised split specification, or ValidationFailed naming the field at fault."""
    spec = dict(spec or {})
    kind = str(spec.get("kind") or "batches").strip().lower()
    if kind in ("random", "shuffle", "kfold", "k-fold", "random_rows"):
        raise ValidationFailed(RANDOM_REFUSAL, details={"split.kind": kind}, code="random_split_refused")
    if kind not in KINDS:
        raise ValidationFailed(
            f"split.kind: must be one of {', '.join(KINDS)}, got {kind!r}", details={"split.kind": kind}
        )
    if kind == "batches":
        holdout = [str(b) for b in spec.get("holdout") or []]
        if not holdout:
            raise ValidationFailed(
                "split.holdout: name at least one batch to hold out", details={"split.holdout": "required"}
            )
        unknown = [b for b in holdout if b not in batches]
        if unknown:
            raise ValidationFailed(
                f"split.holdout: {', '.join(unknown)} not among the chosen batches", details={"split.holdout": unknown}
            )
        if len(set(holdout)) >= len(set(batches)):
            raise ValidationFailed(
                "split.holdout: keep at least one batch for training", details={"split.holdout": holdout}
            )
        return {"kind": kind, "holdout": holdout}
    cut_time = spec.get("cut_time")
    if cut_time:
        try:
            moment = datetime.fromisoformat(str(cut_time).replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed(
                f"split.cut_time: not an ISO 8601 time: {cut_time!r}", details={"split.cut_time": cut_time}
            )
        if moment.tzinfo is None:
            raise ValidationFailed("split.cut_time: give a time zone (e.g. Z)", details={"split.cut_time": cut_time})
        return {"kind": kind, "cut_time": moment.isoformat()}
    try:
        fraction = float(spec.get("cut_fraction", 0.2))
    except (TypeError, ValueError):
        raise ValidationFailed(
            "split.cut_fraction: must be a number", details={"split.cut_fraction": spec.get("cut_fraction")}
        )
    if not 0.0 < fraction < 1.0:
        raise ValidationFailed(
            "split.cut_fraction: must be between 0 and 1 (exclusive)", details={"split.cut_fraction": fraction}
        )
    return {"kind": kind, "cut_fraction": fraction}


def split_masks(
    spec: Mapping[str, Any], *, times_ns: np.ndarray, batch_index: np.ndarray, batch_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(train mask, holdout mask, description) for the aligned rows."""
    if spec["kind"] == "batches":
        held = np.array([b in set(spec["holdout"]) for b in batch_ids], dtype=bool)
        test = held[batch_index] if len(batch_ids) else np.zeros(0, dtype=bool)
        train = ~test
        described = {
            "kind": "batches",
            "holdout": list(spec["holdout"]),
            "train_batches": [b for b, h in zip(batch_ids, held, strict=True) if not h],
        }
    else:
        if "cut_time" in spec:
            moment = datetime.fromisoformat(spec["cut_time"])
            from apps.tsdb.types import to_ns  # noqa: PLC0415

            cut = to_ns(moment)
        else:
            low, high = int(times_ns.min()), int(times_ns.max())
            cut = low + int((high - low) * (1.0 - spec["cut_fraction"]))
        test = times_ns > cut
        train = ~test
        described = {"kind": "chronological", "cut_ns": int(cut), **{k: v for k, v in spec.items() if k != "kind"}}
    described["train_rows"], described["holdout_rows"] = int(train.sum()), int(test.sum())
    if not train.any() or not test.any():
        raise ValidationFailed(
            f"split: {described['train_rows']} training rows and {described['holdout_rows']} holdout rows; "
            "both must be non-empty",
            details={"split": described},
        )
    return train, test, described
