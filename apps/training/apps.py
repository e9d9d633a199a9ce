from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "apps.training"
    label = "training"
    verbose_name = "Training and promotion"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.accounts.roles import ADMIN, MODELER
        from apps.common.navigation import NavLink, register_link

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


def _ensure_bias_schedule(sender: AppConfig, **kwargs) -> None:
    if sender.label != "training":
        return
    from .services import bias_schedule_ensure

    bias_schedule_ensure(using=kwargs.get("using", "default"))
