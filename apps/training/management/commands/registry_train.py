"""Train soft-sensor candidates from stored batches, evaluate them, register, gate and promote.

Every candidate is judged as deployed: scored through the platform's scoring path with the lab bias update
(``--bias-alpha``, default 0.8; ``--no-bias`` for raw estimates).

Example (IndPenSim: train on 92, 93, 96, hold out 98, random forest and gradient boosting):

    manage.py registry_train --project P0001 --target penicillin_concentration \\
        --batches batch_92 batch_93 batch_96 batch_98 --holdout batch_98 \\
        --learner random_forest:n_estimators=100 --learner hist_gradient_boosting --alias staging

By default the steps run in this process with a progress bar; ``--queue`` sends the Celery workflow to
the workers instead and follows it (``--no-wait`` returns at once).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.common.errors import ApplicationError


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_learner(text: str) -> dict[str, Any]:
    """``key`` or ``key:name=value,name=value`` (values read as JSON when they parse, e.g. 30, null)."""
    key, _, rest = text.partition(":")
    hyper = {}
    for part in filter(None, rest.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise CommandError(f"--learner {text}: expected name=value, got {part!r}")
        hyper[name.strip()] = _value(value.strip())
    return {"key": key.strip(), "hyperparameters": hyper}


class Command(BaseCommand):
    help = "Train, evaluate, register, gate and promote soft-sensor candidates from stored batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Registry project ID, e.g. P0001")
        parser.add_argument("--target", required=True, help="Variable to predict, e.g. penicillin_concentration")
        parser.add_argument("--batches", nargs="+", required=True, help="Batch ids to use (training and holdout)")
        parser.add_argument("--device", default="", help="device_id when a batch id exists on several devices")
        parser.add_argument("--holdout", nargs="+", default=[], help="Batches held out (split by batches)")
        parser.add_argument(
            "--cut-fraction", type=float, help="Chronological cut instead: hold out this last fraction of time"
        )
        parser.add_argument("--features", nargs="+", default=None, help="Inputs (default: every sensor and actuator)")
        parser.add_argument("--no-batch-age", action="store_true", help="Do not add batch age as an input")
        parser.add_argument("--gaps", choices=("drop", "ffill"), default="drop")
        parser.add_argument("--max-input-age", type=int, default=3600, help="Seconds an input value stays usable")
        parser.add_argument("--learner", action="append", default=[], help="key[:name=value,...]; repeat for several")
        parser.add_argument("--r2-min", type=float, default=0.9)
        parser.add_argument("--no-persistence-gate", action="store_true")
        parser.add_argument("--no-production-gate", action="store_true")
        parser.add_argument("--alias", default="staging", help='Alias to move ("" to register only)')
        parser.add_argument("--require-approval", action="store_true")
        parser.add_argument("--model-id", default="")
        parser.add_argument("--lab-delay-hours", type=float, help="Override the project's lab delay")
        parser.add_argument(
            "--bias-alpha", type=float, help="Trust in each lab residual of the bias update (default 0.8)"
        )
        parser.add_argument("--no-bias", action="store_true", help="Judge and deploy without a lab bias update")
        parser.add_argument("--user", default="", help="Username recorded as the run's author")
        parser.add_argument("--queue", action="store_true", help="Run through the Celery workers")
        parser.add_argument("--no-wait", action="store_true", help="With --queue: return once queued")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.contrib.auth import get_user_model

        from apps.registry.selectors import project_get
        from apps.training import services
        from apps.training.models import TrainingStep

        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user: no user named {options['user']!r}")
        split = (
            {"kind": "chronological", "cut_fraction": options["cut_fraction"]}
            if options["cut_fraction"] is not None
            else {"kind": "batches", "holdout": options["holdout"]}
        )
        data: dict[str, Any] = {
            "target": options["target"],
            "device_id": options["device"],
            "batches": options["batches"],
            "features": options["features"],
            "add_batch_age": not options["no_batch_age"],
            "preprocessing": {"gaps": options["gaps"], "max_input_age_seconds": options["max_input_age"]},
            "split": split,
            "learners": [parse_learner(text) for text in options["learner"]] or ["random_forest"],
            "gates": {
                "r2_min": options["r2_min"],
                "beats_persistence": not options["no_persistence_gate"],
                "not_worse_than_production": not options["no_production_gate"],
            },
            "alias": options["alias"],
            "require_approval": options["require_approval"],
        }
        if options["model_id"]:
            data["model_id"] = options["model_id"]
        if options["lab_delay_hours"] is not None:
            data["lab_delay_seconds"] = int(options["lab_delay_hours"] * 3600)
        if options["no_bias"]:
            data["bias"] = False
        elif options["bias_alpha"] is not None:
            data["bias"] = {"alpha": options["bias_alpha"]}
        try:
            project = project_get(project_id=options["project"])
            if options["queue"]:
                run = services.training_run_start(user=user, project=project, data=data)
            else:
                run = services.training_run_create(user=user, project=project, data=data)
        except ApplicationError as exc:
            raise CommandError(f"{exc.message}") from exc
        self.stdout.write(f"training run {run.pk} ({run.uid}) for {run.model_id}")
        total = TrainingStep.objects.filter(run=run).count()
        with tqdm(total=total, unit="step", disable=options["no_progress"] or None) as bar:
            if not options["queue"]:

                def advance(name: str) -> None:
                    bar.set_description(name)
                    done = TrainingStep.objects.filter(
                        run=run, status__in=("succeeded", "failed", "waiting", "skipped")
                    ).count()
                    bar.update(done - bar.n)

                try:
                    run = services.training_run_execute_inline(run_id=run.pk, progress=advance)
                except (ApplicationError, *services.TRANSIENT_ERRORS):
                    run.refresh_from_db()
                bar.update(total - bar.n)
            elif not options["no_wait"]:
                while True:
                    run.refresh_from_db()
                    done = TrainingStep.objects.filter(
                        run=run, status__in=("succeeded", "failed", "waiting", "skipped")
                    ).count()
                    bar.set_description(run.current_step or run.status)
                    bar.update(done - bar.n)
                    if run.finished or run.status == "awaiting_approval":
                        break
                    time.sleep(1.0)
        self._report(run)

    def _report(self, run) -> None:
        from apps.training.selectors import run_get

        run = run_get(run_id=run.pk)
        baselines = run.baselines or {}
        for name in ("training_mean", "persistence"):
            overall = (baselines.get(name) or {}).get("overall") or {}
            if overall:
                self.stdout.write(
                    f"  baseline {name}: R² {overall.get('r2')} RMSE {overall.get('rmse')} (n={overall.get('n')})"
                )
        for candidate in run.candidates.all():
            metrics = candidate.metrics or {}
            verdict = "PASS" if candidate.passed else ("FAIL" if candidate.passed is False else candidate.status)
            version = f" v{candidate.version.number} ({candidate.version.status})" if candidate.version else ""
            self.stdout.write(f"  {candidate.learner}{version}: {verdict}")
            for kind in ("as_deployed", "raw"):
                overall = (metrics.get(kind) or {}).get("overall") or {}
                if overall:
                    self.stdout.write(
                        f"    {kind.replace('_', ' ')}: R² {overall.get('r2')} RMSE {overall.get('rmse')}"
                        f" MAE {overall.get('mae')} bias {overall.get('bias')} (n={overall.get('n')})"
                    )
            same = metrics.get("on_persistence_rows") or {}
            if same.get("persistence"):
                self.stdout.write(
                    f"    on the {same['persistence'].get('n')} rows with a known lab value: as deployed RMSE "
                    f"{(same.get('as_deployed') or {}).get('rmse')}, raw {(same.get('raw') or {}).get('rmse')}, "
                    f"persistence {same['persistence'].get('rmse')}"
                )
            for gate in candidate.gates or []:
                mark = {True: "ok ", False: "NO ", None: "-- "}[gate.get("passed")]
                self.stdout.write(f"    {mark}{gate['gate']}: {gate['message']}")
            if candidate.error:
                self.stdout.write(f"    error: {candidate.error}")
        self.stdout.write(f"status: {run.status}" + (f" — {run.error}" if run.error else ""))
        if run.status == "failed":
            raise CommandError(f"training run {run.pk} failed: {run.error}")
