"""The one place reporting touches the rollout core.

Recorders (deployments.listeners) run inside a transition's transaction, and a new
deployment is seen through post_save inside the transaction that creates it: the outbox
rows commit with the change they report, or not at all, so a crash right after a commit
loses no report.  Each only writes rows and, after the commit, hands them to a worker;
never a request to GitHub or a destination.
"""

from __future__ import annotations

import logging

from django.db.models.signals import post_save

from deployments.listeners import RolloutEvent, listener_register
from deployments.models import Deployment

logger = logging.getLogger(__name__)
_connected: list = []


def _on_event(event: str):
    def listener(deployment) -> None:
        from .outbox import reports_for_event

        reports_for_event(event=event, deployment_id=deployment.pk, project_id=deployment.project_id)

    listener.__name__ = f"reporting_{event.replace('-', '_')}"
    return listener


def _on_created(sender, instance: Deployment, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw:
        return
    deployment_id, project_id = instance.pk, instance.project_id

    from .outbox import reports_for_event

    try:
        reports_for_event(event="created", deployment_id=deployment_id, project_id=project_id)
    except Exception:  # noqa: BLE001 - reporting never fails a deployment
        logger.exception("could not write the reports of new deployment %s", deployment_id)


def connect() -> None:
    if _connected:
        return
    for event in RolloutEvent:
        _connected.append(listener_register(event=event, listener=_on_event(event.value), in_transaction=True))
    post_save.connect(_on_created, sender=Deployment, dispatch_uid="reporting.deployment_created")
