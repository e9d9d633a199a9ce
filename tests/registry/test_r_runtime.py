"""The R runtime against real R models trained by ``Rscript`` in the test on IndPenSim batches.

The reference predictions come from R itself (same script that trains the models), computed on the very
doubles the runtime sends, so the runtime's answers must match them to the last bit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.registry.runtimes import r as r_runtime
from apps.registry.runtimes.r import (
    WORKER_SCRIPT,
    RArtefactError,
    RModelError,
    RRuntimeUnavailable,
    RWorkerRuntime,
    RWorkerTimeout,
)
from tests.services import r_available, require

from .conftest import kill_worker

pytestmark = pytest.mark.r_runtime

FEATURES = ["temperature", "sugar_feed_rate", "aeration_rate", "pH", "dissolved_oxygen_concentration"]
TARGET = "penicillin_concentration"
NA_ROW, NA_COLUMN = 5, "sugar_feed_rate"

# Trains rpart, randomForest and ranger on a slice of batch 92, saves them as .rds / .RData, and writes
# R's own predictions for the test inputs (read from JSON with jsonlite, exactly like the worker does).
TRAIN_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
train_csv <- args[1]; inputs_json <- args[2]; out <- args[3]
suppressPackageStartupMessages({library(rpart); library(randomForest); library(ranger)})
d <- read.csv(train_csv, check.names = FALSE)
d <- d[seq(1, 1000, by = 2), c("penicillin_concentration", "temperature", "sugar_feed_rate",
                               "aeration_rate", "pH", "dissolved_oxygen_concentration")]
f <- penicillin_concentration ~ temperature + sugar_feed_rate + aeration_rate + pH + dissolved_oxygen_concentration
set.seed(42)
m_rpart <- rpart(f, data = d)
m_rf <- randomForest(f, data = d, ntree = 60)
m_ranger <- ranger(f, data = d, num.trees = 60, seed = 42, num.threads = 1)
m_rf_xy <- randomForest(x = d[, -1], y = d$penicillin_concentration, ntree = 30)
m_lm <- lm(f, data = d)
m_class <- randomForest(factor(penicillin_concentration > 1) ~ temperature + pH, data = d, ntree = 10)
saveRDS(m_rpart, file.path(out, "rpart.rds"))
saveRDS(m_rf, file.path(out, "randomForest.rds"))
saveRDS(m_ranger, file.path(out, "ranger.rds"), compress = "xz")
saveRDS(m_rf_xy, file.path(out, "randomForest_xy.rds"))
saveRDS(m_lm, file.path(out, "lm.rds"), compress = FALSE)
saveRDS(m_class, file.path(out, "classifier.rds"))
saveRDS(head(d), file.path(out, "data_frame.rds"))
save(m_rf, file = file.path(out, "single.RData"))
training_rows <- d
save(m_rpart, training_rows, file = file.path(out, "model_and_data.RData"))
save(m_rpart, m_lm, file = file.path(out, "two_models.RData"))

x <- jsonlite::fromJSON(inputs_json, simplifyMatrix = FALSE)
newdata <- as.data.frame(lapply(x$data, as.double), col.names = x$columns, check.names = FALSE)
with_na <- newdata
with_na[[x$na_column]][x$na_row] <- NA
preds <- list(
  rpart = predict(m_rpart, newdata = newdata),
  randomForest = predict(m_rf, newdata = newdata),
  ranger = predict(m_ranger, data = newdata)$predictions,
  randomForest_xy = predict(m_rf_xy, newdata = newdata),
  lm = predict(m_lm, newdata = newdata),
  rpart_na = predict(m_rpart, newdata = with_na)
)
writeLines(vapply(names(preds), function(n) paste(n, paste(sprintf("%.17g", preds[[n]]), collapse = " ")), ""),
           file.path(out, "reference.txt"))
"""


@dataclass(frozen=True)
class Trained:
    directory: Path
    X: np.ndarray  # test inputs (batch 93), columns in FEATURES order
    reference: dict[str, np.ndarray]  # R's own predictions per model name

    def model(self, name: str) -> tuple[Path, str]:
        path = self.directory / name
        return path, hashlib.sha256(path.read_bytes()).hexdigest()


_TRAINED: dict[Path, Trained] = {}


@pytest.fixture
def trained(indpensim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Models trained once per session (R training takes a few seconds) from the indpensim_dir batches."""
    require(r_available(), "R (Rscript)")
    if indpensim_dir not in _TRAINED:
        out = tmp_path_factory.mktemp("r-models")
        test = pd.read_csv(indpensim_dir / "batch_93.csv")
        X = test.loc[::4, FEATURES].to_numpy(dtype=np.float64)[:250]
        inputs = {"columns": FEATURES, "data": X.T.tolist(), "na_column": NA_COLUMN, "na_row": NA_ROW + 1}
        (out / "inputs.json").write_text(json.dumps(inputs))
        (out / "train.R").write_text(TRAIN_SCRIPT)
        completed = subprocess.run(
            [
                "Rscript",
                "--vanilla",
                str(out / "train.R"),
                str(indpensim_dir / "batch_92.csv"),
                str(out / "inputs.json"),
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr
        reference = {}
        for line in (out / "reference.txt").read_text().splitlines():
            name, *values = line.split()
            reference[name] = np.array([float("nan") if v == "NA" else float(v) for v in values])
        _TRAINED[indpensim_dir] = Trained(directory=out, X=X, reference=reference)
    return _TRAINED[indpensim_dir]


@pytest.fixture(scope="module")
def runtime():
    """One worker for the tests that only ask it things (each start is R and its model packages loading
    again); the tests that close, kill, time out or fork it take ``own_runtime``."""
    rt = RWorkerRuntime(call_timeout=60, load_timeout=60)
    yield rt
    rt.close()


@pytest.fixture
def own_runtime():
    rt = RWorkerRuntime(call_timeout=60, load_timeout=60)
    yield rt
    rt.close()


def assert_same(predicted: np.ndarray, expected: np.ndarray) -> None:
    """Bit for bit equal to R's own predictions (NaN where R said NA): the doubles travel unaltered."""
    np.testing.assert_array_equal(predicted, expected)


def _process_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.05)
    return False


def test_worker_answers_and_reports_available(runtime):
    require(r_available(), "R (Rscript)")
    assert runtime.available() is True
    assert isinstance(runtime.worker_pid, int)
    assert not _process_gone(runtime.worker_pid, within=0.1)


@pytest.mark.parametrize("name", ["rpart", "randomForest", "ranger", "randomForest_xy", "lm"])
def test_predictions_match_r_itself(runtime, trained, name):
    path, sha = trained.model(f"{name}.rds")
    assert runtime.load_error(path, sha) is None
    predicted = runtime.predict(path, sha, trained.X, FEATURES)
    expected = trained.reference[name]
    assert predicted.shape == (trained.X.shape[0],)
    assert predicted.dtype == np.float64
    assert_same(predicted, expected)
    assert np.unique(predicted).size > 3  # a real model, not a constant


@pytest.mark.parametrize("name", ["rpart", "randomForest", "ranger", "randomForest_xy"])
def test_column_order_does_not_matter(runtime, trained, name):
    path, sha = trained.model(f"{name}.rds")
    in_order = runtime.predict(path, sha, trained.X, FEATURES)
    permutation = [3, 0, 4, 2, 1]
    shuffled = runtime.predict(path, sha, trained.X[:, permutation], [FEATURES[i] for i in permutation])
    np.testing.assert_array_equal(shuffled, in_order)
    # An extra column the model does not use changes nothing either.
    extra = np.column_stack([trained.X, np.full(len(trained.X), 123.0)])
    np.testing.assert_array_equal(runtime.predict(path, sha, extra, [*FEATURES, "vessel_volume"]), in_order)


def test_nan_inputs_reach_r_as_na(runtime, trained):
    X = trained.X.copy()
    X[NA_ROW, FEATURES.index(NA_COLUMN)] = np.nan
    # rpart sends a row with NA down its surrogate splits, exactly as R does on its own.
    path, sha = trained.model("rpart.rds")
    assert_same(runtime.predict(path, sha, X, FEATURES), trained.reference["rpart_na"])
    # randomForest's formula interface answers NA for that row only, which comes back as NaN.
    path, sha = trained.model("randomForest.rds")
    predicted = runtime.predict(path, sha, X, FEATURES)
    assert np.isnan(predicted[NA_ROW])
    others = np.delete(np.arange(len(X)), NA_ROW)
    assert_same(predicted[others], trained.reference["randomForest"][others])


def test_a_model_needing_an_absent_input_is_refused_by_name(runtime, trained):
    path, sha = trained.model("ranger.rds")
    with pytest.raises(RModelError, match="dissolved_oxygen_concentration"):
        runtime.predict(path, sha, trained.X[:, :4], FEATURES[:4])


def test_unloadable_files_give_a_load_error_and_the_worker_survives(runtime, trained, tmp_path):
    garbage = tmp_path / "garbage.rds"
    garbage.write_bytes(b"this is not an R serialisation stream\n" * 10)
    message = runtime.load_error(garbage, hashlib.sha256(garbage.read_bytes()).hexdigest())
    assert message is not None and message.startswith("R could not load garbage.rds:")
    pid = runtime.worker_pid

    path, sha = trained.model("data_frame.rds")
    message = runtime.load_error(path, sha)
    assert message is not None and "no predict method" in message and "data.frame" in message

    # A classifier loads, but its factor predictions are refused with a reason.
    path, sha = trained.model("classifier.rds")
    assert runtime.load_error(path, sha) is None
    with pytest.raises(RModelError, match="factor"):
        runtime.predict(path, sha, trained.X, FEATURES)

    missing = tmp_path / "absent.rds"
    assert "not found" in runtime.load_error(missing, "a" * 64)

    assert runtime.worker_pid == pid  # no error killed the worker
    path, sha = trained.model("rpart.rds")
    assert_same(runtime.predict(path, sha, trained.X, FEATURES), trained.reference["rpart"])


def test_a_wrong_sha256_is_refused_before_r_sees_the_file(runtime, trained, tmp_path):
    path, sha = trained.model("rpart.rds")
    wrong = hashlib.sha256(b"something else").hexdigest()
    message = runtime.load_error(path, wrong)
    assert message is not None and "sha256 mismatch" in message and wrong in message and sha in message
    with pytest.raises(RArtefactError, match="sha256 mismatch"):
        runtime.predict(path, wrong, trained.X, FEATURES)
    # A file corrupted on disk after its sha256 was recorded is refused too.
    corrupted = tmp_path / "rpart.rds"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    assert "sha256 mismatch" in runtime.load_error(corrupted, sha)
    assert "not a sha256" in runtime.load_error(path, "not-a-digest")
    with pytest.raises(ValueError, match="not a sha256"):
        runtime.predict(path, "not-a-digest", trained.X, FEATURES)


def test_declared_packages_are_checked_by_name(runtime):
    assert runtime.missing_packages(["rpart", "NoSuchPackage", "Cubist2000"]) == ["NoSuchPackage", "Cubist2000"]
    assert runtime.missing_packages([]) == []


def test_the_worker_runs_in_the_sandbox_without_secrets(own_runtime, monkeypatch):
    from apps.registry.runtimes import sandbox

    own_runtime.close()
    monkeypatch.setenv("DJANGO_SECRET_KEY", "not-for-R")
    assert own_runtime.available()
    pid = own_runtime.worker_pid
    if sandbox.effective_mode() == sandbox.MODE_BWRAP:
        # bubblewrap's own process is the child; the sandboxed R is below it, in its own PID namespace
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"bwrap")
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in [pid, *map(int, children)]:
        environ = Path(f"/proc/{child}/environ").read_bytes()
        assert b"not-for-R" not in environ and b"DJANGO_SECRET_KEY" not in environ


def test_a_killed_worker_is_restarted_on_the_next_call(own_runtime, trained):
    path, sha = trained.model("randomForest.rds")
    first = own_runtime.predict(path, sha, trained.X, FEATURES)
    old_pid = own_runtime.worker_pid
    kill_worker(old_pid)
    # No waiting: whether the death is noticed before the call or in the middle of it, the call succeeds.
    again = own_runtime.predict(path, sha, trained.X, FEATURES)
    np.testing.assert_array_equal(again, first)
    assert own_runtime.worker_pid not in (None, old_pid)
    assert _process_gone(old_pid)


def test_a_call_over_its_timeout_kills_the_worker_and_the_next_call_recovers(own_runtime, trained):
    path, sha = trained.model("randomForest.rds")
    own_runtime.load(path, sha)
    old_pid = own_runtime.worker_pid
    big = np.tile(trained.X, (40, 1))  # 10,000 rows: far more than a millisecond of R work
    own_runtime.call_timeout = 0.001
    with pytest.raises(RWorkerTimeout):
        own_runtime.predict(path, sha, big, FEATURES)
    assert _process_gone(old_pid)
    own_runtime.call_timeout = 60
    assert_same(own_runtime.predict(path, sha, trained.X, FEATURES), trained.reference["randomForest"])


def test_rdata_files(runtime, trained):
    path, sha = trained.model("single.RData")
    assert runtime.load_error(path, sha) is None
    assert runtime.load(path, sha).format == "RData"
    assert_same(runtime.predict(path, sha, trained.X, FEATURES), trained.reference["randomForest"])
    # A model saved with its training data: the one object with a predict method is the model.
    path, sha = trained.model("model_and_data.RData")
    assert_same(runtime.predict(path, sha, trained.X, FEATURES), trained.reference["rpart"])
    # Two models in one file: ambiguous, refused with their names.
    path, sha = trained.model("two_models.RData")
    message = runtime.load_error(path, sha)
    assert message is not None and "m_rpart" in message and "m_lm" in message


def test_model_info_lists_the_variables_the_model_reads(runtime, trained):
    for name in ("rpart", "randomForest", "ranger", "randomForest_xy", "lm"):
        path, sha = trained.model(f"{name}.rds")
        info = runtime.load(path, sha)
        assert sorted(info.variables) == sorted(FEATURES), name
        assert info.sha256 == sha and info.format == "rds"
    assert "ranger" in runtime.load(*trained.model("ranger.rds")).classes


def test_bad_inputs_are_refused_with_the_reason(runtime, trained):
    path, sha = trained.model("rpart.rds")
    with pytest.raises(ValueError, match="5 feature names"):
        runtime.predict(path, sha, trained.X[:, :3], FEATURES)
    with pytest.raises(ValueError, match="2-D"):
        runtime.predict(path, sha, trained.X[0], FEATURES)
    X = trained.X.copy()
    X[0, 2] = np.inf
    with pytest.raises(ValueError, match="aeration_rate"):
        runtime.predict(path, sha, X, FEATURES)
    with pytest.raises(ValueError, match="duplicate feature name"):
        runtime.predict(path, sha, trained.X, [*FEATURES[:4], "pH"])
    assert runtime.predict(path, sha, trained.X[:0], FEATURES).shape == (0,)


def test_least_recently_used_models_are_unloaded_and_reloaded_on_demand(trained):
    rt = RWorkerRuntime(max_models=2)
    try:
        names = ["rpart", "randomForest", "ranger"]
        for name in names:
            rt.predict(*trained.model(f"{name}.rds"), trained.X, FEATURES)
        worker = rt._worker
        assert list(worker.state["loaded"]) == [trained.model("randomForest.rds")[1], trained.model("ranger.rds")[1]]
        assert worker.call({"op": "ping"}, timeout=10)[0]["loaded"] == 2
        assert_same(rt.predict(*trained.model("rpart.rds"), trained.X, FEATURES), trained.reference["rpart"])
        rt.unload(trained.model("rpart.rds")[1])
        assert worker.call({"op": "ping"}, timeout=10)[0]["loaded"] == 1
        assert rt.worker_pid == worker.pid  # unloading and reloading never restarted the worker
    finally:
        rt.close()


def test_concurrent_threads_share_one_worker_safely(runtime, trained):
    models = ["rpart", "randomForest", "ranger"]
    results: dict[tuple[int, str], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for round_ in range(3):
                name = models[(thread + round_) % 3]
                results[(thread, name)] = runtime.predict(*trained.model(f"{name}.rds"), trained.X, FEATURES)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert len(results) == 12
    for (_, name), predicted in results.items():
        assert_same(predicted, trained.reference[name])


def _predict_in_child(runtime: RWorkerRuntime, path: str, sha: str, X: np.ndarray, queue) -> None:
    predicted = runtime.predict(path, sha, X, FEATURES)
    queue.put((runtime.worker_pid, predicted.tolist()))


def test_a_forked_child_starts_its_own_worker_and_leaves_the_parents_alone(own_runtime, trained):
    path, sha = trained.model("ranger.rds")
    parent_predictions = own_runtime.predict(path, sha, trained.X, FEATURES)
    parent_pid = own_runtime.worker_pid
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_predict_in_child, args=(own_runtime, str(path), sha, trained.X, queue), daemon=True)
    child.start()
    try:
        child_worker_pid, child_predictions = queue.get(timeout=60)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
            child.join(5)
    assert child.exitcode == 0
    assert child_worker_pid != parent_pid
    np.testing.assert_array_equal(np.array(child_predictions), parent_predictions)
    # The child's worker exits with the child (its stdin closes); the parent's keeps serving.
    assert _process_gone(child_worker_pid, within=10)
    assert own_runtime.worker_pid == parent_pid
    np.testing.assert_array_equal(own_runtime.predict(path, sha, trained.X, FEATURES), parent_predictions)


def test_module_level_functions_use_one_process_wide_worker(trained):
    assert r_runtime.r_available() is True
    path, sha = trained.model("rpart.rds")
    assert r_runtime.load_error(path, sha) is None
    assert r_runtime.load(path, sha) == sha
    assert_same(r_runtime.predict(path, sha, trained.X, FEATURES), trained.reference["rpart"])
    assert r_runtime.get_runtime() is r_runtime.get_runtime()
    pid = r_runtime.get_runtime().worker_pid
    r_runtime.predict(*trained.model("ranger.rds"), trained.X, FEATURES)
    assert r_runtime.get_runtime().worker_pid == pid


def test_without_r_versions_report_the_runtime_unavailable(tmp_path):
    """Needs no R: a runtime pointed at a missing Rscript behaves as on a machine without R."""
    rt = RWorkerRuntime(rscript=str(tmp_path / "no-such-Rscript"))
    artefact = tmp_path / "model.rds"
    artefact.write_bytes(b"irrelevant")
    sha = hashlib.sha256(b"irrelevant").hexdigest()
    assert rt.available() is False
    assert rt.load_error(artefact, sha) == "R runtime not available"
    with pytest.raises(RRuntimeUnavailable, match="R runtime not available"):
        rt.predict(artefact, sha, np.zeros((1, 1)), ["x"])
    rt.close()


class _RawWorker:
    """The worker script driven by hand, to test the wire protocol itself."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["Rscript", "--vanilla", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def send(self, line: bytes, payload: bytes = b"") -> dict:
        self.proc.stdin.write(line + b"\n" + payload)
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> int:
        self.proc.stdin.close()  # EOF on stdin: the worker exits by itself
        code = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        return code


def test_protocol_json_form_errors_and_binary_framing(trained):
    path, sha = trained.model("rpart.rds")
    worker = _RawWorker()
    try:
        ping = worker.send(b'{"op":"ping","id":1}')
        assert ping["id"] == 1 and ping["ok"] is True and ping["pid"] == worker.proc.pid and ping["loaded"] == 0
        assert re.match(r"^\d+\.\d+", ping["r_version"])
        reply = worker.send(json.dumps({"op": "load", "id": 2, "key": "m", "path": str(path)}).encode())
        assert reply["ok"] is True and reply["class"] == ["rpart"] and reply["format"] == "rds"

        # Human-readable form: one JSON array per column, null for a missing value (NA in R).
        columns = [list(column) for column in trained.X.T]
        columns[FEATURES.index(NA_COLUMN)][NA_ROW] = None
        request = {"op": "predict", "id": 3, "key": "m", "columns": FEATURES, "data": columns}
        reply = worker.send(json.dumps(request).encode())
        assert reply["ok"] is True and reply["rows"] == len(trained.X)
        np.testing.assert_array_equal(np.array(reply["predictions"], dtype=float), trained.reference["rpart_na"])

        # Every error is a reply, and the worker stays in step for the next request.
        assert worker.send(b"not json at all")["ok"] is False
        assert worker.send(b'{"op":"teleport","id":4}') == {
            "id": 4,
            "ok": False,
            "error": "unknown op 'teleport'",
            "warnings": [],
        }
        reply = worker.send(b'{"op":"predict","id":5,"key":"nope","columns":["a"],"data":[[1]]}')
        assert reply["ok"] is False and "not loaded" in reply["error"]
        short = np.zeros(2).tobytes()  # 2 doubles where 10 rows x 1 column were announced
        header = json.dumps(
            {"op": "predict", "id": 6, "key": "m", "columns": ["pH"], "rows": 10, "payload_bytes": len(short)}
        ).encode()
        reply = worker.send(header, short)
        assert reply["id"] == 6 and reply["ok"] is False and "16 payload bytes" in reply["error"]

        # The binary form: columns back to back as little-endian doubles; NaN arrives as NA.
        X = trained.X.copy()
        X[NA_ROW, FEATURES.index(NA_COLUMN)] = np.nan
        payload = np.ascontiguousarray(X.T, dtype="<f8").tobytes()
        header = json.dumps(
            {"op": "predict", "id": 7, "key": "m", "columns": FEATURES, "rows": len(X), "payload_bytes": len(payload)}
        ).encode()
        reply = worker.send(header, payload)
        assert reply["ok"] is True
        predicted = np.frombuffer(base64.b64decode(reply["predictions_f64le"]), dtype="<f8")
        np.testing.assert_array_equal(predicted, trained.reference["rpart_na"])
        assert worker.send(b'{"op":"ping","id":8}')["loaded"] == 1
    finally:
        assert worker.close() == 0
