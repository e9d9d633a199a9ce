"""An R model (rpart and ranger, trained by Rscript in the test) registered and served through the REST API."""

from __future__ import annotations

import subprocess
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest

from apps.registry.descriptors import parse_descriptor
from apps.registry.models import VersionStatus
from apps.registry.services import ArtifactInput, model_version_register
from tests.services import r_available, require

from .conftest import FEATURES, INDPENSIM_DIR, descriptor

pytestmark = [pytest.mark.django_db, pytest.mark.r_runtime]

TRAIN_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
kind <- args[4]
d <- read.csv(args[1], check.names = FALSE)
d <- d[seq(1, nrow(d), by = 5), ]
f <- as.formula(paste("penicillin_concentration ~", paste(c(%s), collapse = " + ")))
if (kind == "rpart") {
  library(rpart); m <- rpart(f, data = d, control = rpart.control(maxdepth = 5))
} else {
  library(ranger); m <- ranger(f, data = d, num.trees = 20, seed = 1)
}
saveRDS(m, args[2])
t <- read.csv(args[3], check.names = FALSE)
p <- if (kind == "rpart") predict(m, t) else predict(m, data = t)$predictions
write.csv(data.frame(prediction = p), args[3], row.names = FALSE)
"""


@pytest.mark.parametrize("kind", ["rpart", "ranger"])
def test_r_model_served_by_alias(project, role_users, api_client_for, tmp_path, kind):
    require(r_available(), "R (Rscript)")
    names = ", ".join(f'"{name}"' for name in FEATURES)
    script = tmp_path / "train.R"
    script.write_text(TRAIN_SCRIPT % names)
    rows = pd.read_csv(INDPENSIM_DIR / "batch_96.csv").iloc[::50][FEATURES].reset_index(drop=True)
    rows_path = tmp_path / "rows.csv"
    rows.to_csv(rows_path, index=False)
    model_id = f"0010_[R]_penicillin_{kind}"
    artefact = tmp_path / f"{model_id}.rds"
    subprocess.run(
        ["Rscript", str(script), str(INDPENSIM_DIR / "batch_92.csv"), str(artefact), str(rows_path), kind],
        check=True,
        capture_output=True,
        timeout=240,
    )
    expected = pd.read_csv(rows_path)["prediction"].to_numpy()

    document = descriptor(model_id, model_file=artefact.name, language=[{"name": "R", "version": "4.2"}])
    version = model_version_register(
        project=project,
        descriptor=parse_descriptor(document),
        files={"model": ArtifactInput(artefact, artefact.name)},
        user=role_users["modeler"],
        alias="staging",
        alias_reason="R model",
    )
    assert version.flavor == "r-rds"
    assert version.status == VersionStatus.ONLINE, version.status_description

    shuffled = {name: rows[name].tolist() for name in reversed(FEATURES)}
    response = api_client_for("operator").post(
        f"/api/v1/registry/projects/P0001/soft-sensors/{quote(model_id)}/aliases/staging/predict/",
        {"inputs": shuffled},
        format="json",
    )
    assert response.status_code == 200, response.content
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-6)
