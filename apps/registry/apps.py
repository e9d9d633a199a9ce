from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from apps.common.dictionaries import register_dictionary_provider
        from apps.common.health import register_check
        from apps.common.navigation import NavLink, register_link
        from apps.common.roles import ADMIN, MODELER, OPERATOR

        from .health import model_runtimes
        from .selectors import variable_dictionary_by_tag

        register_dictionary_provider(variable_dictionary_by_tag)
        register_check("model_runtimes")(model_runtimes)
        self._prewarm_runtimes()
        _audit_registry()

        register_link(
            NavLink(
                key="registry-manage",
                title="Model registry",
                section="Models",
                order=200,
                description=(
                    "Upload, version, describe and promote soft-sensor models; move aliases; import STAMM projects."
                ),
                url_name="registry:projects",
                capability="manage_models",
                roles=(MODELER, ADMIN),
            )
        )
        register_link(
            NavLink(
                key="registry-browse",
                title="Soft-sensor models",
                section="Models",
                order=200,
                description=(
                    "The projects, their variables and the models that estimate what the lab measures (read only)."
                ),
                url_name="registry:projects",
                capability="view_process",
                roles=(OPERATOR,),
            )
        )

    @staticmethod
    def _prewarm_runtimes() -> None:
        """Each web and Celery worker process starts its default model runtime worker ahead of the first call."""
        from celery.signals import worker_process_init
        from django.core.signals import request_started

        from .runtimes.python import prewarm

        request_started.connect(prewarm, dispatch_uid="registry-runtime-prewarm")
        worker_process_init.connect(prewarm, dispatch_uid="registry-runtime-prewarm", weak=False)


def _audit_registry() -> None:
    """What the registry records in the audit trail: projects and dictionaries, soft sensors, versions and
    their status (the descriptor's history is the revisions'), files, aliases and their moves, signing."""
    from apps.audit.tracking import audit_register

    from . import models

    audit_register(models.Project, label="project")
    audit_register(models.Variable, label="variable (dictionary)")
    audit_register(models.SoftSensor, label="soft sensor")
    audit_register(models.ModelVersion, exclude=("descriptor", "first_predicted_at"), label="model version")
    audit_register(models.VersionArtifact, label="version file")
    audit_register(models.Alias, label="alias")
    audit_register(models.AliasMove, label="alias move")
    audit_register(models.DescriptorRevision, exclude=("before", "after"), label="descriptor revision")
    audit_register(models.SigningPolicy, label="signing policy")
    audit_register(models.RuntimeEnvironment, label="runtime environment")
