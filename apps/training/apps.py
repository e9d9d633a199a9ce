from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "apps.training"
    label = "training"
    verbose_name = "Training and promotion"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.common.navigation import NavLink, register_link
        from apps.common.roles import ADMIN, MODELER

        register_link(
            NavLink(
                key="training",
                title="Train",
                description="Train soft-sensor candidates on stored batches, compare them honestly, promote the best.",
                url_name="training:page",
                capability="train_models",
                roles=(MODELER, ADMIN),
                section="Models",
                order=40,
            )
        )
        post_migrate.connect(_ensure_bias_schedule, dispatch_uid="training.ensure_bias_schedule")
        register_link(
            NavLink(
                key="challengers",
                title="Champion / challenger",
                description="Shadow deployments judged against their champion on lab samples; proposed promotions.",
                url_name="training:challengers",
                capability="train_models",
                roles=(MODELER, ADMIN),
                section="Models",
                order=45,
            )
        )
        from apps.drift.signals import alert_opened

        alert_opened.connect(_alert_opened, dispatch_uid="training.plans_on_alert_opened")
        from apps.registry.signals import version_registered

        version_registered.connect(_version_registered, dispatch_uid="training.explain_uploaded_versions")
        _audit_training()
        # Register the tasks in every process: services queue them by name (they never import ``tasks``).
        from . import tasks  # noqa: F401


def _ensure_bias_schedule(sender: AppConfig, **kwargs) -> None:
    if sender.label != "training":
        return
    from .services import bias_schedule_ensure, governance_schedules_ensure

    bias_schedule_ensure(using=kwargs.get("using", "default"))
    governance_schedules_ensure(using=kwargs.get("using", "default"))


def _alert_opened(sender: object, **facts) -> None:
    """A drift alert opened: the plans that follow its deployment's alerts get one trigger each."""
    from .services import plans_on_alert_opened

    plans_on_alert_opened(**facts)


def _version_registered(sender: object, *, version_id: int, source: str, **_: object) -> None:
    """An uploaded or imported version: measure its explanation on its declared experiments, in a worker
    (the training workflow explains the versions it registers itself)."""
    from .services import EXPLAINED_SOURCES

    if source in EXPLAINED_SOURCES:
        from celery import signature

        signature("training.version_explain", args=[version_id]).apply_async()


def _audit_training() -> None:
    """Plans, the configuration (gates) and approval of runs, project profiles and promotion requests are
    audited; a run's progress (status, step outputs) is its own record and is not."""
    from apps.audit.tracking import audit_register

    from . import models

    audit_register(models.TrainingPlan, exclude=("trigger_state", "periodic_task"), label="training plan")
    audit_register(
        models.TrainingRun,
        exclude=(
            "status",
            "current_step",
            "error",
            "task_id",
            "started_at",
            "finished_at",
            "dataset",
            "baselines",
            "best_candidate",
        ),
        label="training run",
    )
    audit_register(models.ProjectProfile, label="project training profile")
    audit_register(models.PromotionRequest, label="promotion request")
