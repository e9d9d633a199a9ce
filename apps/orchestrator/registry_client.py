"""HTTP client of the registry's REST predict endpoint: the only way the pipeline reaches a model.

The module boundary is STAMM's: the orchestrator never imports model code; it sends one columnar batch
``{"inputs": {feature: [values...]}}`` per deployment and run to ``STAMM_REGISTRY_URL`` (this same server
by default) with a service token, and reads back one prediction and one validity verdict per row.

Failures are split by what a retry can fix:
- connection errors, timeouts and 5xx answers are retried with exponential backoff (``retries`` times,
  ``backoff * 2**attempt`` seconds apart) and then raise ``RegistryUnavailable``;
- a 4xx answer is the registry refusing the request (missing input, unknown version, bad token) and
  raises ``RegistryRejected`` at once with the registry's own message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
import requests

#: Path of the predict endpoint for one version of a soft sensor, below the base URL.
PREDICT_PATH = "/api/v1/registry/projects/{project_id}/soft-sensors/{model_id}/versions/{number}/predict/"
#: A cheap path to prove the registry answers (any HTTP answer below 500 counts as reachable).
#: Any authenticated caller may read it: proves the server answers and the service token is accepted.
PING_PATH = "/api/v1/me/"


class RegistryError(Exception):
    """The registry could not produce predictions; ``attempts`` says how many requests were made."""

    def __init__(self, message: str, *, attempts: int = 0, status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status


class RegistryUnavailable(RegistryError):
    """Unreachable, timed out or 5xx, after every retry."""


class RegistryRejected(RegistryError):
    """A 4xx answer: retrying the same request cannot help."""


@dataclass(frozen=True)
class PredictResponse:
    """Predictions as an (n, outputs) array, one validity verdict per row, and what served them."""

    values: np.ndarray
    outputs: tuple[str, ...]
    validity: tuple[dict[str, Any], ...]
    version: int | None
    attempts: int


def _error_message(response: requests.Response) -> str:
    """The registry's message from the common error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = str(error.get("message") or "")
            details = error.get("details")
            if details:
                message = f"{message} ({json.dumps(details)[:400]})"
            return message or response.reason
        if "detail" in body:
            return str(body["detail"])
    return json.dumps(body)[:500]


def _verdict(item: Any) -> dict[str, Any]:
    """One row's validity as the registry's serving gives it: ``{"verdict": …, "inputs": [...]}``."""
    if isinstance(item, Mapping):
        verdict = {"verdict": str(item.get("verdict") or item.get("status") or "ok")}
        if isinstance(item.get("inputs"), list):
            verdict["inputs"] = [str(name) for name in item["inputs"]]
        return verdict
    return {"verdict": str(item or "ok")}


def parse_predict_body(
    body: Any, rows: int, outputs: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...], tuple[dict[str, Any], ...]]:
    """Read ``predictions`` (list of numbers, or list of rows for several outputs) and ``validity``."""
    if not isinstance(body, Mapping) or "predictions" not in body:
        raise RegistryUnavailable("the registry's answer has no 'predictions' key")
    values = np.asarray(body["predictions"], dtype=np.float64)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2 or values.shape[0] != rows:
        raise RegistryUnavailable(
            f"the registry returned {values.shape[0] if values.ndim else 0} predictions for {rows} rows"
        )
    names = tuple(body.get("outputs") or outputs)
    if len(names) != values.shape[1]:
        names = tuple(outputs)[: values.shape[1]]
    if len(names) != values.shape[1]:
        raise RegistryUnavailable(f"{values.shape[1]} output columns but the descriptor names {len(outputs)} outputs")
    raw_validity = body.get("validity")
    if isinstance(raw_validity, list) and len(raw_validity) == rows:
        validity = tuple(_verdict(v) for v in raw_validity)
    else:
        validity = ({"verdict": "ok"},) * rows
    return values, names, validity


class RegistryClient:
    """A keep-alive HTTP session to the registry; safe to share between threads of one process."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | Callable[[], str],
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"}

    def predict_url(self, *, project_id: str, model_id: str, number: int) -> str:
        return self.base_url + PREDICT_PATH.format(
            project_id=quote(project_id, safe=""), model_id=quote(model_id, safe=""), number=int(number)
        )

    def predict(
        self,
        *,
        project_id: str,
        model_id: str,
        number: int,
        inputs: Mapping[str, Sequence[float]],
        rows: int,
        outputs: Sequence[str],
    ) -> PredictResponse:
        """One batched call; retried on 5xx / connection errors, refused at once on 4xx."""
        url = self.predict_url(project_id=project_id, model_id=model_id, number=number)
        payload = json.dumps({"inputs": {name: list(values) for name, values in inputs.items()}})
        attempts = 0
        last_problem = ""
        while True:
            attempts += 1
            try:
                response = self.session.post(url, data=payload, headers=self._headers(), timeout=self.timeout)
            except requests.RequestException as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                status = None
            else:
                status = response.status_code
                if status < 400:
                    try:
                        body = response.json()
                    except ValueError:
                        raise RegistryUnavailable("the registry answered with invalid JSON", attempts=attempts)
                    values, names, validity = parse_predict_body(body, rows, outputs)
                    version = body.get("version")
                    if isinstance(version, Mapping):
                        version = version.get("number")
                    try:
                        version = int(version) if version is not None else None
                    except (TypeError, ValueError):
                        version = None
                    return PredictResponse(values, names, validity, version, attempts)
                if status < 500:
                    raise RegistryRejected(
                        f"registry refused the request ({status}): {_error_message(response)}",
                        attempts=attempts,
                        status=status,
                    )
                last_problem = f"HTTP {status}: {_error_message(response)}"
            if attempts > self.retries:
                raise RegistryUnavailable(
                    f"registry unavailable after {attempts} attempts: {last_problem}", attempts=attempts, status=status
                )
            self._sleep(self.backoff * (2 ** (attempts - 1)))

    def ping(self) -> tuple[bool, str]:
        """Reachable when the registry answers within the timeout, below 500, and accepts the token."""
        url = self.base_url + PING_PATH
        try:
            response = self.session.get(url, headers=self._headers(), timeout=min(self.timeout, 5))
        except requests.RequestException as exc:
            return False, f"registry at {self.base_url} unreachable: {type(exc).__name__}: {exc}"
        if response.status_code >= 500:
            return False, f"registry at {self.base_url} answered {response.status_code}"
        if response.status_code == 401:
            return False, f"registry at {self.base_url} refused the pipeline's token (401)"
        return True, f"registry at {self.base_url} answered {response.status_code}"
