"""`make run`'s demo seed builds the whole IndPenSim demo through the real services, and is idempotent."""
import pytest
from django.core.management import call_command

from apps.drift.models import Alert, DriftJob
from apps.orchestrator.models import Deployment
from apps.registry.models import Alias, Project
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
    assert "batch_age" in features
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
