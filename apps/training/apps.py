from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "apps.training"
    label = "training"
    verbose_name = "Training and promotion"

    def ready(self) -> None:
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
