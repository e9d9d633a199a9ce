from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit trail and signatures"

    def ready(self) -> None:
        from apps.common.navigation import NavLink, register_link
        from apps.common.roles import ADMIN, MANAGER, MODELER

        register_link(
            NavLink(
                key="audit",
                title="Audit trail",
                description="Who changed which model, deployment, plan, alert or user, when and why; signatures.",
                url_name="audit:trail",
                capability="view_audit",
                roles=(MODELER, MANAGER, ADMIN),
                section="Governance",
                order=90,
            )
        )
