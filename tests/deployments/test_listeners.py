"""Listeners: in-process hooks told, after commit, that a rollout went live, failed, rolled
back or was superseded; a failing listener changes nothing."""

from __future__ import annotations

import pytest

from deployments.listeners import RolloutEvent, listener_register
from deployments.models import State
from deployments.services import deployment_request, deployment_rollback
from tests.rollout import rollout_drive_until_wait as drive

pytestmark = pytest.mark.django_db(transaction=True)

# The outcomes a rollout ends in (RolloutEvent also has progress events: started, promotion waiting...).
OUTCOMES = (RolloutEvent.WENT_LIVE, RolloutEvent.FAILED, RolloutEvent.SUPERSEDED, RolloutEvent.ROLLED_BACK)


@pytest.fixture
def heard():
    heard: list[tuple[str, int, str]] = []
    removers = [listener_register(event=event, listener=lambda d, event=event: heard.append(
        (event.value, d.number, d.state))) for event in OUTCOMES]

    def broken(deployment):
        raise RuntimeError("a listener with a bug")

    removers.append(listener_register(event=RolloutEvent.WENT_LIVE, listener=broken))
    yield heard
    for remove in removers:
        remove()


def test_listeners_hear_what_happened_after_it_committed(make_project, memory_runtime, user, heard):
    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    assert drive(deployment_request(project=project, sha="a" * 40, actor=user)).state == State.SUCCEEDED
    memory_runtime.fail_build["b" * 40] = "RUN make exited 2"
    drive(deployment_request(project=project, sha="b" * 40, actor=user))
    queued = deployment_request(project=project, sha="c" * 40, actor=user)
    newer = drive(deployment_request(project=project, sha="d" * 40, actor=user))  # supersedes #3
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    assert newer.state == rollback.state == State.SUCCEEDED
    assert heard == [
        ("went-live", 1, State.SUCCEEDED),
        ("failed", 2, State.FAILED),
        ("superseded", queued.number, State.SUPERSEDED),
        ("went-live", newer.number, State.SUCCEEDED),
        ("went-live", rollback.number, State.SUCCEEDED),
        ("rolled-back", rollback.number, State.SUCCEEDED),
    ]
