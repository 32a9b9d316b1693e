"""Celery tasks: thin, by id."""

from celery import shared_task

from . import outbox, redelivery


@shared_task(name="reporting.tasks.stream_send", ignore_result=True)
def stream_send(project_id: int, destination_id: int = 0) -> int:
    return outbox.stream_send(project_id=project_id, destination_id=destination_id or None)


@shared_task(name="reporting.tasks.reports_sweep", ignore_result=True)
def reports_sweep() -> int:
    return outbox.reports_sweep()


@shared_task(name="reporting.tasks.reports_prune", ignore_result=True)
def reports_prune() -> int:
    return outbox.reports_prune()


@shared_task(name="reporting.tasks.deliveries_recover", ignore_result=True)
def deliveries_recover() -> int:
    return redelivery.deliveries_recover_all()
