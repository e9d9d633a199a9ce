"""The learners a run may train: scikit-learn estimators (with scalers where they need them) and R.

Each learner has a key, default hyperparameters, the hyperparameters a caller may set (anything else is
refused with the allowed list) and a ``fit`` that returns a ``Fitted`` model: something with ``predict``
plus how to save it. scikit-learn models are saved with skops (safe to load; the registry records the
types it trusts); the R learner fits ``rpart`` in an ``Rscript`` process and saves an ``.rds`` that the
registry's R runtime serves.

Models are fitted on plain NumPy arrays in the descriptor's feature order (no column names), which is
exactly how the registry calls them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import ValidationFailed


@dataclass
class Fitted:
    """A fitted candidate: predictions and a serialised artefact."""

    learner: str
    language: str  # "python" | "r"
    artifact: bytes
    extension: str  # ".skops" | ".rds"
    predict: Callable[[np.ndarray], np.ndarray]
    packages: list[dict[str, str]] = field(default_factory=list)
    estimator_class: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artifact).hexdigest()


@dataclass(frozen=True)
class Learner:
    key: str
    label: str
    language: str
    learner_name: str  # the descriptor's model_description.learner
    model_type: str  # interpretable | black box | ensemble
    defaults: Mapping[str, Any]
    allowed: tuple[str, ...]
    build: Callable[[Mapping[str, Any]], Any] | None = None  # scikit-learn estimator factory

    def hyperparameters(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.allowed))
        if unknown:
            raise ValidationFailed(
                f"learners.{self.key}.hyperparameters: unknown {', '.join(unknown)} "
                f"(allowed: {', '.join(self.allowed)})",
                details={f"learners.{self.key}.hyperparameters": unknown},
            )
        for name, value in given.items():
            if not isinstance(value, (int, float, str, bool)) and value is not None:
                raise ValidationFailed(
                    f"learners.{self.key}.hyperparameters.{name}: must be a number, text, true/false or null",
                    details={f"learners.{self.key}.hyperparameters.{name}": repr(value)},
                )
        return {**self.defaults, **given}


def _sklearn_version() -> str:
    import sklearn  # noqa: PLC0415

    return sklearn.__version__


def _linear(hp: Mapping[str, Any]) -> Any:
    from sklearn.linear_model import Ridge  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    return make_pipeline(StandardScaler(), Ridge(alpha=float(hp["alpha"])))


def _pls(hp: Mapping[str, Any]) -> Any:
    from sklearn.cross_decomposition import PLSRegression  # noqa: PLC0415

    return PLSRegression(n_components=int(hp["n_components"]), scale=True)


def _tree(hp: Mapping[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeRegressor  # noqa: PLC0415

    return DecisionTreeRegressor(
        max_depth=hp["max_depth"], min_samples_leaf=int(hp["min_samples_leaf"]), random_state=int(hp["random_state"])
    )


def _forest(hp: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestRegressor  # noqa: PLC0415

    return RandomForestRegressor(
        n_estimators=int(hp["n_estimators"]),
        max_depth=hp["max_depth"],
        min_samples_leaf=int(hp["min_samples_leaf"]),
        max_features=hp["max_features"],
        random_state=int(hp["random_state"]),
        n_jobs=1,
    )


def _hgb(hp: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: PLC0415

    return HistGradientBoostingRegressor(
        max_iter=int(hp["max_iter"]),
        learning_rate=float(hp["learning_rate"]),
        max_depth=hp["max_depth"],
        random_state=int(hp["random_state"]),
    )


def _svr(hp: Mapping[str, Any]) -> Any:
    from sklearn.compose import TransformedTargetRegressor  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415
    from sklearn.svm import SVR  # noqa: PLC0415

    model = make_pipeline(StandardScaler(), SVR(C=float(hp["C"]), epsilon=float(hp["epsilon"]), gamma=hp["gamma"]))
    return TransformedTargetRegressor(regressor=model, transformer=StandardScaler())


LEARNERS: dict[str, Learner] = {
    learner.key: learner
    for learner in (
        Learner(
            "linear",
            "Ridge regression (scaled)",
            "python",
            "linear_regression",
            "interpretable",
            {"alpha": 1.0},
            ("alpha",),
            _linear,
        ),
        Learner(
            "pls",
            "Partial least squares",
            "python",
            "PLS",
            "interpretable",
            {"n_components": 3},
            ("n_components",),
            _pls,
        ),
        Learner(
            "decision_tree",
            "Decision tree (CART)",
            "python",
            "CART",
            "interpretable",
            {"max_depth": 8, "min_samples_leaf": 5, "random_state": 0},
            ("max_depth", "min_samples_leaf", "random_state"),
            _tree,
        ),
        Learner(
            "random_forest",
            "Random forest",
            "python",
            "random_forest",
            "ensemble",
            {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1, "max_features": 1.0, "random_state": 0},
            ("n_estimators", "max_depth", "min_samples_leaf", "max_features", "random_state"),
            _forest,
        ),
        Learner(
            "hist_gradient_boosting",
            "Histogram gradient boosting",
            "python",
            "gradient_boosting",
            "ensemble",
            {"max_iter": 200, "learning_rate": 0.1, "max_depth": None, "random_state": 0},
            ("max_iter", "learning_rate", "max_depth", "random_state"),
            _hgb,
        ),
        Learner(
            "svr",
            "Support vector regression (scaled)",
            "python",
            "SVR",
            "black box",
            {"C": 10.0, "epsilon": 0.05, "gamma": "scale"},
            ("C", "epsilon", "gamma"),
            _svr,
        ),
        Learner(
            "r_rpart",
            "Regression tree in R (rpart)",
            "r",
            "CART",
            "interpretable",
            {"cp": 0.001, "maxdepth": 12, "minbucket": 5},
            ("cp", "maxdepth", "minbucket"),
        ),
    )
}


def r_learners_available() -> bool:
    """R learners need Rscript with rpart (and the registry's R runtime to evaluate and serve them)."""
    if shutil.which("Rscript") is None:
        return False
    try:
        done = subprocess.run(["Rscript", "-e", "library(rpart)"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def learner_get(key: str) -> Learner:
    try:
        return LEARNERS[key]
    except KeyError:
        raise ValidationFailed(
            f"learners: unknown learner {key!r} (known: {', '.join(LEARNERS)})", details={"learners": key}
        ) from None


def _skops_bytes(estimator: Any) -> bytes:
    import skops.io as sio  # noqa: PLC0415

    return sio.dumps(estimator)


def single_threaded():
    """One BLAS/OpenMP thread per fit: parallelism comes from the chord's tasks, and on a busy machine
    OpenMP's spinning threads make histogram boosting 50x slower (74 s instead of 1.3 s measured here)."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    return threadpool_limits(limits=1)


def _predict_with(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict(Z: np.ndarray) -> np.ndarray:
        with single_threaded():
            return np.asarray(estimator.predict(Z), dtype=float).reshape(Z.shape[0], -1)[:, 0]

    return predict


def fit_sklearn(learner: Learner, hp: Mapping[str, Any], X: np.ndarray, y: np.ndarray) -> Fitted:
    estimator = learner.build(hp)
    with single_threaded():
        estimator.fit(X, y)
    module = type(estimator).__module__.rsplit(".", 1)[0]
    return Fitted(
        learner=learner.key,
        language="python",
        artifact=_skops_bytes(estimator),
        extension=".skops",
        predict=_predict_with(estimator),
        packages=[{"package": module, "class": type(estimator).__name__, "version": _sklearn_version()}],
        estimator_class=type(estimator).__name__,
    )


R_FIT_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressMessages(library(rpart))
data <- read.csv(args[1], check.names = FALSE)
control <- rpart.control(cp = as.numeric(args[3]), maxdepth = as.integer(args[4]), minbucket = as.integer(args[5]))
model <- rpart(.target ~ ., data = data, method = "anova", control = control)
saveRDS(model, args[2])
cat(as.character(packageVersion("rpart")), R.version$major, R.version$minor, sep = "\n")
"""


def fit_r_rpart(
    learner: Learner, hp: Mapping[str, Any], X: np.ndarray, y: np.ndarray, features: Sequence[str]
) -> Fitted:
    """Fit rpart in a throwaway Rscript process; predictions go through the registry's R runtime."""
    if shutil.which("Rscript") is None:
        raise ValidationFailed(
            "learners.r_rpart: R is not installed on this server (Rscript not found)", details={"learners": "r_rpart"}
        )
    import pandas as pd  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="stamm-rpart-") as tmp:
        folder = Path(tmp)
        frame = pd.DataFrame(X, columns=list(features))
        frame[".target"] = y
        frame.to_csv(folder / "train.csv", index=False)
        (folder / "fit.R").write_text(R_FIT_SCRIPT)
        done = subprocess.run(
            [
                "Rscript",
                str(folder / "fit.R"),
                str(folder / "train.csv"),
                str(folder / "model.rds"),
                str(float(hp["cp"])),
                str(int(hp["maxdepth"])),
                str(int(hp["minbucket"])),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rpart failed: {done.stderr.strip()[-500:]}")
        artifact = (folder / "model.rds").read_bytes()
    lines = done.stdout.strip().splitlines()
    rpart_version = lines[0] if lines else ""
    r_version = ".".join(lines[1:3]) if len(lines) >= 3 else ""
    sha = hashlib.sha256(artifact).hexdigest()
    names = list(features)
    holder: dict[str, Path] = {}

    def predict(Z: np.ndarray) -> np.ndarray:
        from apps.registry.runtimes import r as r_runtime  # noqa: PLC0415

        if "path" not in holder:
            path = Path(tempfile.mkdtemp(prefix="stamm-rpart-model-")) / "model.rds"
            path.write_bytes(artifact)
            holder["path"] = path
        return np.asarray(r_runtime.predict(holder["path"], sha, Z, names), dtype=float).ravel()

    return Fitted(
        learner=learner.key,
        language="r",
        artifact=artifact,
        extension=".rds",
        predict=predict,
        packages=[
            {"package": "rpart", "class": "rpart", "version": rpart_version},
            {"package": "R", "version": r_version},
        ],
        estimator_class="rpart",
    )


def fit(key: str, hp: Mapping[str, Any], X: np.ndarray, y: np.ndarray, features: Sequence[str]) -> Fitted:
    learner = learner_get(key)
    if learner.language == "r":
        return fit_r_rpart(learner, hp, X, y, features)
    return fit_sklearn(learner, hp, X, y)


def load_fitted(key: str, data: bytes, features: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """A predict function for an artefact saved by ``fit`` (used when evaluation runs in another task)."""
    learner = learner_get(key)
    if learner.language == "r":
        from apps.registry.runtimes import r as r_runtime  # noqa: PLC0415

        sha = hashlib.sha256(data).hexdigest()
        path = Path(tempfile.mkdtemp(prefix="stamm-rpart-model-")) / "model.rds"
        path.write_bytes(data)
        names = list(features)
        return lambda Z: np.asarray(r_runtime.predict(path, sha, Z, names), dtype=float).ravel()
    from apps.registry.artifact_safety import skops_loads  # noqa: PLC0415 - the registry's loading rules

    estimator = skops_loads(data, f"{key} model")
    return _predict_with(estimator)


__all__ = ["LEARNERS", "Fitted", "Learner", "fit", "learner_get", "load_fitted", "r_learners_available"]
