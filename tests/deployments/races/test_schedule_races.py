"""Races around a scheduled switch, interleaved with a gate and a lock wait (no sleeps):
a newer merge, and a schedule change, arriving while the switch at the time is moving
traffic.  After each, the database and the runtime's routes agree."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deployments.errors import Conflict
from deployments.models import DeploymentSchedule, Project, State, Trigger
from deployments.services import deployment_abort, deployment_from_webhook, deployment_schedule_change, project_update
from tests.rollout import rollout_drive_until_wait

from .interleave import Gate, Worker, assert_agree, wait_until_blocked_on_a_lock

pytestmark = pytest.mark.django_db(transaction=True)
drive = rollout_drive_until_wait


def merge(project, sha):
    with transaction.atomic():  # as the webhook view calls it
        deployment, _ = deployment_from_webhook(project=project, sha=sha * 40, trigger=Trigger.MERGE,
                                                message="", author="octo", sender="octo")
    return deployment


@pytest.fixture
def waiting(make_project, user, memory_runtime):
    """#1 live; #2 ready and warm, its schedule due now."""
    project = make_project(keep_warm_seconds=600, watch_seconds=0)
    assert drive(merge(project, "a")).state == State.SUCCEEDED
    later = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    project_update(project=Project.objects.get(pk=project.pk), actor=user, strategy={"at": later, "tz": "UTC"})
    second = drive(merge(Project.objects.get(pk=project.pk), "b"))
    assert second.state == State.SWITCHING and memory_runtime.weights["hello"] == {"1": 100}
    DeploymentSchedule.objects.filter(deployment=second).update(at=timezone.now() - timedelta(milliseconds=1))
    return second


def test_a_newer_merge_during_the_scheduled_switch_waits_its_turn(waiting, user, memory_runtime):
    gate = Gate(when=lambda weights, **_: weights == {"2": 100})
    memory_runtime.hooks["set_traffic"] = gate
    switch = Worker("switch", lambda: drive(waiting))
    switch.start()
    gate.wait_reached()  # #2 won its switch and holds the project's lock while traffic moves
    project = Project.objects.get(pk=waiting.project_id)
    newer = Worker("merge", lambda: drive(merge(project, "c")))
    newer.start()
    wait_until_blocked_on_a_lock(newer)
    gate.open()
    assert switch.finish().state == State.SUCCEEDED  # not superseded halfway
    third = newer.finish()
    assert third.state == State.SWITCHING  # built and warmed, waiting for its own schedule
    assert memory_runtime.weights["hello"] == {"2": 100}
    deployment_abort(project=project, number=third.number, actor=user)  # cancel its schedule
    assert_agree(project, memory_runtime)


def test_a_schedule_change_during_the_switch_is_refused_as_fired(waiting, user, memory_runtime):
    gate = Gate(when=lambda weights, **_: weights == {"2": 100})
    memory_runtime.hooks["set_traffic"] = gate
    switch = Worker("switch", lambda: drive(waiting))
    switch.start()
    gate.wait_reached()
    project = Project.objects.get(pk=waiting.project_id)
    later = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")

    def change():
        try:
            deployment_schedule_change(project=project, number=waiting.number, actor=user, data={"at": later})
        except Conflict as exc:
            return exc.message
        return "changed"

    changer = Worker("change", change)
    changer.start()
    wait_until_blocked_on_a_lock(changer)
    gate.open()
    assert switch.finish().state == State.SUCCEEDED
    assert "fired" in changer.finish()
    assert_agree(project, memory_runtime)
