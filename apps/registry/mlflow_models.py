"""MLflow model directories as registry versions: the ``MLmodel`` file read as data, a STAMM descriptor made
from it (its signature's input columns become the features, in order), its ``requirements.txt`` and
``python_env.yaml`` become the version's declared environment.

Only the ``sklearn`` flavour (its pickled model) and ``python_function`` models are served; loading happens in
the runtime worker (``pyworker/models.py``), never here: this module only reads YAML and JSON text.
Framework-free (tested on plain bytes).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import yaml

from .yaml_io import load_yaml

#: The flavours a version can be served from.
SERVED_FLAVOURS = ("sklearn", "python_function")


class MlflowModelError(ValueError):
    """A zip that is not a usable MLflow model directory; the message says what is missing."""


@dataclass(frozen=True)
class MlflowModel:
    """What the registry needs from an MLflow model directory."""

    flavour: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    requirements: str
    python_version: str | None
    loader: str


def _member(archive: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        return archive.read(name)
    except KeyError:
        return None


def read_mlflow_zip(data: bytes) -> MlflowModel:
    """Read the MLmodel (and requirements) of a zipped MLflow model directory, MLmodel at the top."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise MlflowModelError(f"not a zip file ({exc})") from None
    with archive:
        raw = _member(archive, "MLmodel")
        if raw is None:
            raise MlflowModelError("no MLmodel file at the top of the zip (zip the model directory's contents)")
        document = load_yaml(raw)
        if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
            raise MlflowModelError("MLmodel: no flavors")
        flavors = document["flavors"]
        flavour = next((name for name in SERVED_FLAVOURS if name in flavors), None)
        if flavour is None:
            raise MlflowModelError(f"MLmodel: flavours {', '.join(flavors)}; served are sklearn and python_function")
        loader = str((flavors.get("python_function") or {}).get("loader_module") or flavour)
        signature = document.get("signature") or {}
        inputs = _columns(signature.get("inputs"), "signature.inputs")
        outputs = _columns(signature.get("outputs"), "signature.outputs", required=False)
        requirements = _served_requirements(
            (_member(archive, "requirements.txt") or b"").decode("utf-8", errors="replace"), flavour
        )
        python_env = load_yaml(_member(archive, "python_env.yaml") or b"{}") or {}
    if not inputs:
        raise MlflowModelError("MLmodel: the signature names no input columns (log the model with a signature)")
    python = python_env.get("python") if isinstance(python_env, dict) else None
    return MlflowModel(flavour, tuple(inputs), tuple(outputs), requirements, str(python) if python else None, loader)


def _served_requirements(text: str, flavour: str) -> str:
    """The model's requirements.txt, without MLflow itself when the sklearn flavour is served: the runtime reads
    its pickled model directly, so MLflow's own (large) dependency tree is not installed for it."""
    if flavour != "sklearn":
        return text
    kept = []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip().split(";", 1)[0]
        base = name.replace(" ", "").split("=")[0].split("<")[0].split(">")[0].split("[")[0].split("~")[0].lower()
        if base not in ("mlflow", "mlflow-skinny"):
            kept.append(line)
    return "\n".join(kept)


def _columns(value: Any, where: str, *, required: bool = True) -> list[str]:
    if value in (None, ""):
        return []
    try:
        items = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise MlflowModelError(f"MLmodel: {where} is not JSON") from None
    if not isinstance(items, list):
        raise MlflowModelError(f"MLmodel: {where} must be a list of columns")
    names = [str(item["name"]) for item in items if isinstance(item, dict) and item.get("name")]
    if required and len(names) != len(items):
        raise MlflowModelError(f"MLmodel: {where} must name every column (a column-based signature)")
    return names


def mlflow_descriptor(model: MlflowModel, *, model_id: str, output: str | None, name: str = "") -> str:
    """A STAMM descriptor (YAML) for an MLflow model: features = signature inputs in order."""
    outputs = list(model.outputs) or ([output] if output else [])
    if output and model.outputs and output not in model.outputs:
        raise MlflowModelError(f"output {output!r} is not one of the signature's outputs ({', '.join(model.outputs)})")
    if not outputs:
        raise MlflowModelError("the signature names no output column: give the output's name")
    document = {
        "ml_model_configuration": {
            "model_identification": {
                "name": name or model_id,
                "version": "V.1.0",
                "ID": model_id,
                "status": "online",
                "status_description": "Imported from an MLflow model directory.",
            },
            "model_description": {
                "learner": model.loader,
                "model_type": "black box",
                "model_name": name or model_id,
                "language": [{"name": "python"}, {"version": model.python_version or ""}],
                "config_files": {"model_file": f"{model_id}.mlflow"},
                "packages": [],
            },
            "inputs": {"features": [{"name": column, "type": "sensor"} for column in model.inputs]},
            "outputs": {"information": [{"name": column} for column in outputs]},
        }
    }
    return yaml.safe_dump(document, sort_keys=False)
