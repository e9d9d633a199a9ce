"""Celery tasks of the registry: thin wrappers that take ids and call one service."""

from celery import shared_task


@shared_task(name="registry.environment_build", ignore_result=True, acks_late=True)
def environment_build(environment_id: int) -> None:
    """Build a declared environment and settle the versions waiting for it (``services.environments``)."""
    from .services.environments import environment_build as build  # noqa: PLC0415

    build(environment_id=environment_id)
