"""Seed the embedded demo that ``make run`` shows, through the same services and commands users have.

Idempotent: every step first checks whether its result exists, so running ``make run`` again reuses the
data. Steps: demo users → the IndPenSim project and its variable dictionary → nine historical batches in
the time-series store → a random-forest soft sensor trained on 92, 93, 96 (98 held out) from the eight
variables a plant measures online, through the training workflow with its default gates: judged as deployed
(with the lab bias update) against delayed-lab persistence, and promoted to ``production`` only if it beats
it (the move is signed by the demo administrator: production is a signed alias) → a deployment scoring every
batch of reactor R1. Batch 91 is not imported: ``make run``
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

from apps.common.errors import NotFound
from apps.training.evaluation import INDPENSIM_ONLINE_INPUTS
from apps.tsdb.types import UTC, Collection

PROJECT_INFO = Path(settings.BASE_DIR) / "demo" / "indpensim" / "project_info.yaml"
DEFAULT_DATA_DIR = Path(settings.BASE_DIR).parent / "shared" / "data" / "indpensim"
DEVICE = "R1"
HISTORY = (92, 93, 94, 95, 96, 97, 98, 99, 100)
LIVE_BATCH = 91
TRAIN_BATCHES = ("batch_92", "batch_93", "batch_96", "batch_98")
HOLDOUT = ("batch_98",)
DEPLOYMENT = "penicillin-r1-production"
MODEL_ID = "0001_[python]_penicillin_RF"
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
        if soft_sensor is None:
            self.stdout.write(self.style.WARNING("Demo ready without a deployment: no version passed its gates."))
            return
        deployment = self._deployment(soft_sensor)
        self._drift_jobs(deployment)
        self.stdout.write(self.style.SUCCESS("Demo ready: project P0001 (penicillin), reactor R1."))

    def _project(self):
        from apps.registry.project_info import parse_project_info_yaml
        from apps.registry.selectors import project_get
        from apps.registry.services import project_upsert

        try:
            existing = project_get(project_id="P0001")
        except NotFound:
            existing = None
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
        """The production soft sensor: trained once through the training workflow (default gates, judged as
        deployed). When no candidate beats persistence the demo says so and deploys nothing."""
        from apps.registry.selectors import soft_sensor_get, spec_for_alias
        from apps.training.selectors import run_list

        def production():
            try:
                soft_sensor = soft_sensor_get(project_id=project.project_id, model_id=MODEL_ID)
            except NotFound:
                return None
            return soft_sensor if spec_for_alias(soft_sensor_id=soft_sensor.pk, alias="production") else None

        found = production()
        if found is not None:
            self.stdout.write(f"Soft sensor {found.model_id} is in production.")
            return found
        previous = run_list(project=project).filter(model_id=MODEL_ID).first()
        if previous is not None and previous.status == "rejected":
            self.stdout.write(self.style.WARNING(f"Training run {previous.pk} was rejected: {previous.error}"))
            return None
        if previous is not None and previous.status == "awaiting_approval":
            self._sign(previous)
            return production()
        self.stdout.write("Training the demo soft sensor (random forest, held-out batch 98, default gates)...")
        call_command(
            "registry_train",
            project=project.project_id,
            target="penicillin_concentration",
            batches=list(TRAIN_BATCHES),
            holdout=list(HOLDOUT),
            device=DEVICE,
            features=list(INDPENSIM_ONLINE_INPUTS),
            learner=["random_forest:n_estimators=60,max_depth=12"],
            model_id=MODEL_ID,
            alias="production",
            user="modeler",
            no_progress=True,
            stdout=self.stdout,
        )
        run = run_list(project=project).filter(model_id=MODEL_ID).first()
        if run is not None and run.status == "awaiting_approval":
            self._sign(run)
        found = production()
        if found is None:
            self.stdout.write(
                self.style.WARNING(
                    "No candidate beat delayed-lab persistence as deployed; nothing was promoted, and the "
                    f"soft-sensor page shows why (training run {run.pk if run else '?'})."
                )
            )
        return found

    def _sign(self, run) -> None:
        """production is a signed alias: the demo administrator (who did not train it: the modeler did) signs the
        move with their password from the credentials file, as a person would on the run page."""
        from django.contrib.auth import get_user_model

        from apps.accounts.services import demo_password
        from apps.audit.context import acting_as
        from apps.audit.services import SignatureInput
        from apps.registry.selectors import version_sha256
        from apps.training.selectors import run_get
        from apps.training.services import training_run_approve

        admin = get_user_model().objects.filter(username="admin").first()
        password = demo_password(username="admin", credentials_path=Path(settings.VAR_DIR) / "demo-credentials.txt")
        if admin is None or password is None:
            self.stdout.write(self.style.WARNING(
                f"Training run {run.pk} waits for a signature of production: sign it on its page "
                "(the demo admin's password is not in var/demo-credentials.txt)."
            ))
            return
        run = run_get(run_id=run.pk)
        candidate = next(c for c in run.candidates.all() if c.pk == run.best_candidate_id)
        reason = "demo: beats delayed-lab persistence as deployed on held-out batch 98"
        with acting_as(admin):
            training_run_approve(
                run=run,
                user=admin,
                note=reason,
                signature=SignatureInput(password=password, meaning="approved", reason=reason,
                                         sha256=version_sha256(candidate.version)),
            )
        self.stdout.write(f"production signed by the demo admin (approved: {reason}).")

    def _deployment(self, soft_sensor):
        from apps.orchestrator.selectors import deployment_get
        from apps.orchestrator.services import deployment_create

        try:
            existing = deployment_get(deployment_id=DEPLOYMENT)
        except NotFound:
            existing = None
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
        from apps.drift.selectors import job_list
        from apps.drift.services import drift_job_create, drift_job_run

        for batch in ("batch_100", "batch_98"):
            name = f"psi-log-phase-{batch.replace('_', '-')}"
            if job_list().filter(name=name).exists():
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
