"""`make run`'s demo seed builds the whole IndPenSim demo through the real services, and is idempotent."""
import pytest
from django.core.management import call_command

from apps.drift.models import Alert, DriftJob
from apps.orchestrator.models import Deployment
from apps.registry.models import Alias, AliasMove, Project
from apps.registry.selectors import version_sha256
from apps.training.evaluation import INDPENSIM_ONLINE_INPUTS
from apps.tsdb.backends import get_backend
from apps.tsdb.types import Collection

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_demo_seed_builds_the_demo_once(indpensim_dir, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("demo_seed", data_dir=indpensim_dir)

    assert Project.objects.get(project_id="P0001").variables.count() == 31
    groups = {g.group.batch_id: g for g in get_backend().groups(collection=Collection.RAW, project_name="penicillin")}
    # Nine historical batches; batch 91 is left for the live replay of `make run`.
    assert sorted(groups) == sorted(f"batch_{n}" for n in (92, 93, 94, 95, 96, 97, 98, 99, 100))
    assert all(g.point_count > 20_000 for g in groups.values())
    production = Alias.objects.select_related("version").get(name="production")
    assert production.version.soft_sensor.model_id == "0001_[python]_penicillin_RF"
    assert production.version.status == "online"
    features = [f["name"] for f in production.version.descriptor["inputs"]["features"]]
    # What a plant measures online, plus batch age: no substrate or biomass, which only the lab knows.
    assert features == [*INDPENSIM_ONLINE_INPUTS, "batch_age"]
    assert "substrate_concentration" not in features
    # Trained through the workflow with its default gates: the estimator as deployed beat persistence.
    evaluation = production.version.training_data["evaluation"]
    assert evaluation["verdict"] == "passed" and evaluation["beats_persistence"] is True
    same = evaluation["on_persistence_rows"]
    assert same["as_deployed"]["rmse"] < same["persistence"]["rmse"]
    assert production.version.training_data["bias"]["alpha"] == 0.8
    # production is a signed alias: trained by the modeler, signed by the admin (two people), bound to its sha256.
    move = AliasMove.objects.select_related("signature").get(alias_name="production")
    assert production.version.created_by.username == "modeler"
    assert move.signature.signer_username == "admin" and move.signature.meaning == "approved"
    assert move.signature.subject_sha256 == version_sha256(production.version)
    deployment = Deployment.objects.get(name="penicillin-r1-production")
    assert deployment.alias == "production" and deployment.enabled
    assert DriftJob.objects.filter(deployment=deployment).count() == 2
    # The aeration-fault batch 100 is flagged in the log phase; in-control batch 98 is not.
    assert list(Alert.objects.values_list("job__name", flat=True)) == ["psi-log-phase-batch-100"]
    credentials = (tmp_path / "demo-credentials.txt").read_text()
    assert all(f"username={role}" in credentials for role in ("operator", "modeler", "manager", "admin"))

    call_command("demo_seed", data_dir=indpensim_dir)
    assert Alias.objects.filter(name="production").count() == 1
    assert production.version.soft_sensor.versions.count() == 1
    assert Deployment.objects.count() == 1 and DriftJob.objects.count() == 2
    again = {g.group.batch_id: g.point_count for g in get_backend().groups(collection=Collection.RAW)}
    assert again == {b: g.point_count for b, g in groups.items()}
