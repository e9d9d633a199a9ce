"""Seed the embedded demo that ``make run`` shows, through the same services and commands users have.

Idempotent: every step first checks whether its result exists, so running ``make run`` again reuses the
data. Steps: demo users → the IndPenSim project and its variable dictionary → nine historical batches in
the time-series store → a random-forest soft sensor trained on 92, 93, 96 (98 held out) and promoted to
``production`` → a deployment scoring every batch of reactor R1. Batch 91 is not imported: ``make run``
replays it live (``tsdb_replay``), so predictions appear while you watch. Lives in the dashboard app because
the dashboard is the top layer that may depend on every other app.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.tsdb.types import UTC, Collection

PROJECT_INFO = Path(settings.BASE_DIR) / "demo" / "indpensim" / "project_info.yaml"
DEFAULT_DATA_DIR = Path(settings.BASE_DIR).parent / "shared" / "data" / "indpensim"
DEVICE = "R1"
HISTORY = (92, 93, 94, 95, 96, 97, 98, 99, 100)
LIVE_BATCH = 91
TRAIN_BATCHES = ("batch_92", "batch_93", "batch_96", "batch_98")
HOLDOUT = ("batch_98",)
DEPLOYMENT = "penicillin-r1-production"
#: Historical batches are laid end to end before today, ~12 days apart (each lasts 210–260 h).
BATCH_SPACING = timedelta(days=12)


class Command(BaseCommand):
    help = "Create the demo users and the IndPenSim demo (project, data, trained soft sensor, deployment)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="IndPenSim CSV folder")
        parser.add_argument("--users-only", action="store_true", help="Only create the demo users")

    def handle(self, *args: Any, **options: Any) -> None:
        credentials = Path(settings.VAR_DIR) / "demo-credentials.txt"
        call_command("demo_users", credentials_file=str(credentials), stdout=self.stdout)
        if options["users_only"]:
            return
        data_dir: Path = options["data_dir"]
        if not data_dir.is_dir():
            raise CommandError(f"IndPenSim data not found at {data_dir} (use --data-dir)")
        project = self._project()
        self._history(data_dir)
        soft_sensor = self._soft_sensor(project)
        deployment = self._deployment(soft_sensor)
        self._drift_jobs(deployment)
        self.stdout.write(self.style.SUCCESS("Demo ready: project P0001 (penicillin), reactor R1."))

    def _project(self):
        from apps.registry.models import Project
        from apps.registry.project_info import parse_project_info_yaml
        from apps.registry.services import project_upsert

        existing = Project.objects.filter(project_id="P0001").first()
        if existing is not None:
            self.stdout.write("Project P0001 exists.")
            return existing
        project = project_upsert(info=parse_project_info_yaml(PROJECT_INFO.read_text()))
        self.stdout.write(f"Project {project.project_id} ({project.name}) created with its variable dictionary.")
        return project

    def _history(self, data_dir: Path) -> None:
        from apps.tsdb.backends import get_backend

        present = {g.group.batch_id for g in get_backend().groups(collection=Collection.RAW, project_name="penicillin")}
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        for position, number in enumerate(HISTORY):
            batch = f"batch_{number}"
            if batch in present:
                continue
            start = today - BATCH_SPACING * (len(HISTORY) - position)
            call_command(
                "tsdb_import_csv",
                str(data_dir / f"{batch}.csv"),
                project="penicillin",
                device=DEVICE,
                batch=batch,
                start=start,
                no_progress=True,
                stdout=self.stdout,
            )

    def _soft_sensor(self, project):
        from apps.registry.models import Alias

        alias = (
            Alias.objects.filter(soft_sensor__project=project, name="production")
            .select_related("soft_sensor")
            .first()
        )
        if alias is not None:
            self.stdout.write(f"Soft sensor {alias.soft_sensor.model_id} is in production.")
            return alias.soft_sensor
        self.stdout.write("Training the demo soft sensor (random forest, held-out batch 98)...")
        call_command(
            "registry_train",
            project=project.project_id,
            target="penicillin_concentration",
            batches=list(TRAIN_BATCHES),
            holdout=list(HOLDOUT),
            device=DEVICE,
            learner=["random_forest:n_estimators=60,max_depth=12"],
            model_id="0001_[python]_penicillin_RF",
            # Delayed-lab persistence is a strong baseline on IndPenSim (R² ≈ 0.975); the demo promotes on R².
            no_persistence_gate=True,
            alias="production",
            user="modeler",
            no_progress=True,
            stdout=self.stdout,
        )
        alias = Alias.objects.filter(soft_sensor__project=project, name="production").select_related("soft_sensor")
        if not alias.exists():
            raise CommandError("Training finished without promoting a version to production (see above).")
        return alias.first().soft_sensor

    def _deployment(self, soft_sensor):
        from apps.orchestrator.models import Deployment
        from apps.orchestrator.services import deployment_create

        existing = Deployment.objects.filter(name=DEPLOYMENT).first()
        if existing is not None:
            self.stdout.write(f"Deployment {DEPLOYMENT} exists.")
            return existing
        deployment = deployment_create(
            name=DEPLOYMENT,
            description="Production penicillin soft sensor on reactor R1 (every batch).",
            soft_sensor=soft_sensor,
            alias="production",
            device_ids=[DEVICE],
            max_input_age_seconds=3600,
        )
        self.stdout.write(f"Deployment {DEPLOYMENT} created: the worker scores every batch of R1.")
        return deployment

    def _drift_jobs(self, deployment) -> None:
        """PSI on the log phase against the training batches: an aeration-fault batch and an in-control one."""
        from apps.drift.models import DriftJob
        from apps.drift.services import drift_job_create, drift_job_run

        for batch in ("batch_100", "batch_98"):
            name = f"psi-log-phase-{batch.replace('_', '-')}"
            if DriftJob.objects.filter(name=name).exists():
                continue
            job = drift_job_create(
                name=name,
                description=f"PSI, log phase (30-120 h) of {batch} against the model's training batches.",
                deployment=deployment,
                detector="psi",
                params={},
                reference={"kind": "training"},
                test={"kind": "phase", "phase": "log", "batch_id": batch},
                schedule_seconds=86400,
            )
            result = drift_job_run(job=job)
            verdict = "drift" if result.drift else ("no drift" if result.status == "succeeded" else result.error)
            self.stdout.write(f"Drift job {name}: {verdict}.")
