"""The Open Inference Protocol V2 (KServe / MLServer / Triton) as data: infer requests in, responses out.

Pure code (numbers and bytes, no Django): ``inference_apis.py`` resolves the model and runs it.

An infer request is a JSON object ``{"id", "parameters", "inputs": [{"name", "shape", "datatype", "data",
"parameters"}], "outputs": [{"name", "parameters"}]}``, optionally followed by binary tensor data (the binary
tensor data extension: the JSON header's length is the ``Inference-Header-Content-Length`` HTTP header and each
input with ``parameters.binary_data_size`` takes that many bytes, in order). A soft sensor takes its inputs as
one tensor per feature (named after it, ``[n]`` or ``[n, 1]``) or as one ``[n, k]`` tensor whose columns are the
descriptor's features in order. Outputs are FP64 tensors of shape ``[n]`` named after the predicted variables,
as JSON data or, when asked (``binary_data_output`` or an output's ``binary_data``), as binary data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: V2 datatypes accepted as inputs → NumPy dtypes (little-endian, as the extension specifies).
DATATYPES = {
    "FP64": "<f8", "FP32": "<f4", "FP16": "<f2",
    "INT64": "<i8", "INT32": "<i4", "INT16": "<i2", "INT8": "i1",
    "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2", "UINT8": "u1",
    "BOOL": "?",
}  # fmt: skip
HEADER_LENGTH = "Inference-Header-Content-Length"


class V2Error(ValueError):
    """A request that does not follow the protocol; the message says what and where."""


@dataclass(frozen=True)
class InferRequest:
    X: np.ndarray
    ignored: list[str]
    request_id: str | None
    binary_outputs: bool


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v >= 0 for v in value):
        raise V2Error(f"{where}.shape: must be a list of non-negative integers")
    return tuple(value)


def _tensor(item: Any, index: int, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    where = f"inputs[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise V2Error(f"{where}: must be an object with a name, shape, datatype and data")
    shape = _shape(item.get("shape"), where)
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise V2Error(f"{where}.datatype: {datatype!r} is not a numeric V2 datatype ({', '.join(DATATYPES)})")
    count = int(np.prod(shape))
    parameters = item.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        dtype = np.dtype(DATATYPES[datatype])
        if not isinstance(size, int) or size != count * dtype.itemsize or offset + size > len(binary):
            raise V2Error(f"{where}.parameters.binary_data_size: {size!r} does not match shape {list(shape)}")
        values = np.frombuffer(binary[offset : offset + size], dtype=dtype).astype(np.float64)
        offset += size
    else:
        data = item.get("data")
        if data is None:
            raise V2Error(f"{where}.data: required (or binary data with parameters.binary_data_size)")
        try:
            values = np.asarray(data, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise V2Error(f"{where}.data: must hold numbers") from None
        if values.size != count:
            raise V2Error(f"{where}.data: {values.size} values for shape {list(shape)}")
    if not np.isfinite(values).all():
        raise V2Error(f"{where}.data: must hold finite numbers")
    return item["name"], values.reshape(shape), offset


def parse_infer(body: bytes, header_length: int | None, features: Sequence[str], max_rows: int) -> InferRequest:
    """The feature matrix (columns in ``features`` order) of an infer request. Raises V2Error."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise V2Error(f"{HEADER_LENGTH}: {header_length} is not within the body's {len(body)} bytes")
    head = body[:header_length] if header_length is not None else body
    try:
        document = json.loads(head)
    except ValueError:
        raise V2Error("the request is not JSON (or its binary part has no Inference-Header-Content-Length)") from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list) or not document["inputs"]:
        raise V2Error("inputs: a non-empty list of tensors is required")
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    offset = 0
    tensors: dict[str, np.ndarray] = {}
    for index, item in enumerate(document["inputs"]):
        name, values, offset = _tensor(item, index, binary, offset)
        tensors[name] = values
    X, ignored = _matrix(tensors, features)
    if X.shape[0] > max_rows:
        raise V2Error(f"inputs: {X.shape[0]} rows, more than the {max_rows} allowed per request")
    parameters = document.get("parameters") or {}
    outputs = document.get("outputs") or []
    binary_outputs = bool(isinstance(parameters, dict) and parameters.get("binary_data_output")) or any(
        isinstance(o, dict) and isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data")
        for o in outputs
    )
    request_id = document.get("id")
    return InferRequest(X, ignored, str(request_id) if request_id is not None else None, binary_outputs)


def _matrix(tensors: dict[str, np.ndarray], features: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    named = [name for name in features if name in tensors]
    if named:
        missing = [name for name in features if name not in tensors]
        if missing:
            raise V2Error(f"inputs: missing tensor(s) for feature(s) {', '.join(missing)}")
        columns = []
        for name in features:
            values = tensors[name]
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            if values.ndim != 1:
                raise V2Error(f"inputs.{name}: shape must be [n] or [n, 1], got {list(values.shape)}")
            columns.append(values)
        if len({len(column) for column in columns}) != 1:
            raise V2Error("inputs: every feature tensor must have the same number of rows")
        return np.column_stack(columns), sorted(set(tensors) - set(features))
    if len(tensors) == 1:
        ((name, values),) = tensors.items()
        if values.ndim == 1 and len(features) == 1:
            values = values.reshape(-1, 1)
        if values.ndim == 2 and values.shape[1] == len(features):
            return np.ascontiguousarray(values), []
        raise V2Error(
            f"inputs.{name}: one tensor must have shape [n, {len(features)}] (columns: {', '.join(features)})"
        )
    raise V2Error(f"inputs: name one tensor per feature ({', '.join(features)}) or send one [n, k] tensor")


def infer_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[str],
    predictions: np.ndarray,
    binary: bool,
    parameters: dict[str, Any],
) -> tuple[bytes, int | None]:
    """``(body, header length or None)`` of an infer response (predictions: ``(n,)`` or ``(n, len(outputs))``)."""
    values = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    tensors, blobs = [], []
    for index, name in enumerate(outputs):
        column = np.ascontiguousarray(values[:, index], dtype="<f8")
        tensor: dict[str, Any] = {"name": name, "datatype": "FP64", "shape": [int(column.shape[0])]}
        if binary:
            data = column.tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            tensor["data"] = [None if not np.isfinite(v) else float(v) for v in column.tolist()]
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = parameters
    head = json.dumps(document, separators=(",", ":")).encode()
    if not binary:
        return head, None
    return head + b"".join(blobs), len(head)


def model_metadata(
    *, name: str, versions: Sequence[str], platform: str, features: Sequence[str], outputs: Sequence[str]
) -> dict[str, Any]:
    """The model metadata response: one FP64 ``[-1]`` tensor per feature and per output."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [{"name": f, "datatype": "FP64", "shape": [-1]} for f in features],
        "outputs": [{"name": o, "datatype": "FP64", "shape": [-1]} for o in outputs],
    }
