from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from apps.common.navigation import NavLink, register_link
        from apps.common.roles import ADMIN, MANAGER, MODELER, OPERATOR
        from apps.drift import signals as drift_signals
        from apps.orchestrator import signals as orchestrator_signals

        from . import receivers, tasks  # noqa: F401  (tasks: registered by name for the worker)

        # Lower layers announce with signals; this app listens (they never import it: .importlinter).
        for signal, receiver in (
            (drift_signals.alert_opened, receivers.alert_opened),
            (drift_signals.alert_acknowledged, receivers.alert_acknowledged),
            (drift_signals.alert_resolved, receivers.alert_resolved),
            (orchestrator_signals.pipeline_failing, receivers.pipeline_failing),
            (orchestrator_signals.estimates_invalid, receivers.estimates_invalid),
        ):
            signal.connect(receiver, dispatch_uid=f"notifications.{receiver.__name__}")

        register_link(
            NavLink(
                key="notifications",
                title="Notifications",
                description="E-mail or signed webhooks when drift alerts open, are acknowledged or resolved, a "
                "pipeline fails or estimates turn invalid; per deployment.",
                url_name="notifications:subscriptions",
                capability="view_process",
                roles=(OPERATOR, MODELER, MANAGER, ADMIN),
                section="Account",
                order=95,
            )
        )
