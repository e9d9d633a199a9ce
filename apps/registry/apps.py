from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from apps.accounts.roles import ADMIN, MODELER, OPERATOR
        from apps.common.navigation import NavLink, register_link

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
