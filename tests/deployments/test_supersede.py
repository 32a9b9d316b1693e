"""A newer deployment supersedes the project's older ones that have not started, and
nothing else: not rollbacks, not a rollout under way, not another project's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.models import Deployment, State, Trigger
from deployments.services import deployment_create

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def create(project, sha, trigger=Trigger.PUSH):
    from django.db import transaction

    with transaction.atomic():
        return deployment_create(project=project, sha=sha * 40, trigger=trigger)


def test_only_older_queued_non_rollback_deployments_of_the_project_are_superseded(make_project):
    project = make_project()
    other = make_project(slug="other", repository="octo/other")
    started = create(project, "b")
    Deployment.objects.filter(pk=started.pk).update(state=State.BUILDING)  # its rollout is under way
    rollback = create(project, "c", trigger=Trigger.ROLLBACK)
    queued = create(project, "a")
    elsewhere = create(other, "d")
    assert Deployment.objects.filter(state=State.SUPERSEDED).count() == 0

    newest = create(project, "e")

    states = dict(Deployment.objects.values_list("pk", "state"))
    assert states[queued.pk] == State.SUPERSEDED
    assert states[started.pk] == State.BUILDING
    assert states[rollback.pk] == State.QUEUED
    assert states[elsewhere.pk] == State.QUEUED
    assert states[newest.pk] == State.QUEUED
    queued.refresh_from_db()
    assert queued.failure_reason == f"Superseded by #{newest.number} before it started."
    assert queued.finished_at is not None and queued.finished_at >= queued.created_at
    assert [e.message for e in queued.events.order_by("id")][-1] == (
        f"Superseded: Superseded by #{newest.number} before it started.")
    # Only the superseded one got a timeline entry from this.
    assert not started.events.filter(message__startswith="Superseded").exists()
    assert not rollback.events.filter(message__startswith="Superseded").exists()


def test_a_rollback_supersedes_nothing(make_project):
    project = make_project()
    queued = create(project, "a")
    create(project, "b", trigger=Trigger.ROLLBACK)
    queued.refresh_from_db()
    assert queued.state == State.QUEUED


SQLITE_SCRIPT = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection, transaction
from deployments.models import Deployment
from deployments.services import deployment_create, project_create
p = project_create(actor=None, slug="hello", repository="octo/hello")
for sha in "ab":
    with transaction.atomic():
        d = deployment_create(project=p, sha=sha * 40, trigger="push")
old = Deployment.objects.get(number=1)
with connection.cursor() as c:
    c.execute("SELECT CAST(finished_at AS TEXT), CAST(created_at AS TEXT) FROM deployments_deployment WHERE number = 1")
    finished_raw, created_raw = c.fetchone()
print(connection.vendor, old.state, old.failure_reason, old.finished_at is not None,
      len(finished_raw) == len(created_raw), Deployment.objects.get(number=2).state, sep="|")
"""


def test_supersession_on_the_embedded_default_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", SWITCHBACK_VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", SQLITE_SCRIPT], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == (
        "sqlite|superseded|Superseded by #2 before it started.|True|True|queued")


def test_supersession_is_a_compare_and_set_with_its_timeline_and_listeners(
        make_project, django_capture_on_commit_callbacks):
    """The bulk transition (one UPDATE ... RETURNING) keeps what deployment_transition does:
    only rows still queued move, each gets its phase event, and listeners hear SUPERSEDED
    once the transaction commits."""
    from django.db import transaction

    from deployments.listeners import RolloutEvent, listener_register
    from deployments.transitions import deployments_supersede_queued, project_lock

    project = make_project()
    first, second = create(project, "a"), create(project, "b")  # the second superseded the first
    heard: list[tuple[int, str, str]] = []
    remove = listener_register(event=RolloutEvent.SUPERSEDED,
                               listener=lambda d: heard.append((d.pk, d.state, d.failure_reason)))
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with transaction.atomic():
                locked = project_lock(project_id=project.pk)
                done = deployments_supersede_queued(locked_project=locked, before_number=99, reason="Because.")
                assert [d.pk for d in done] == [second.pk]  # the first is no longer queued: no match
                assert heard == []  # nothing is told before the commit
        assert len(callbacks) == 1
        assert heard == [(second.pk, State.SUPERSEDED, "Because.")]
    finally:
        remove()
    second.refresh_from_db()
    assert (second.state, second.failure_reason) == (State.SUPERSEDED, "Because.")
    assert second.finished_at is not None
    assert list(second.events.order_by("id").values_list("message", "data"))[-1] == (
        "Superseded: Because.", {"phase": State.SUPERSEDED, "from": State.QUEUED})
    assert list(first.events.values_list("message", flat=True)).count(
        f"Superseded: Superseded by #{second.number} before it started.") == 1


@pytest.mark.django_db(transaction=True)
def test_supersession_refuses_to_run_without_the_callers_transaction(make_project):
    """It trusts the caller's lock: outside a transaction there is none to trust."""
    from deployments.transitions import deployments_supersede_queued

    project = make_project()
    queued = create(project, "a")
    with pytest.raises(ValueError):
        deployments_supersede_queued(locked_project=project, before_number=5, reason="x")
    queued.refresh_from_db()
    assert queued.state == State.QUEUED


@pytest.mark.django_db(transaction=True)
def test_a_transition_trusts_a_caller_lock_only_for_its_own_project_inside_a_transaction(make_project):
    from django.db import transaction

    from deployments.transitions import deployment_transition, project_lock

    project, other = make_project(), make_project(slug="other", repository="octo/other")
    queued = create(project, "a")
    with pytest.raises(ValueError):  # no transaction: there is no lock to trust
        deployment_transition(deployment=queued, expected=(State.QUEUED,), to=State.SUPERSEDED, locked_project=project)
    with pytest.raises(ValueError), transaction.atomic():  # another project's lock
        deployment_transition(deployment=queued, expected=(State.QUEUED,), to=State.SUPERSEDED,
                              locked_project=project_lock(project_id=other.pk))
    queued.refresh_from_db()
    assert queued.state == State.QUEUED
    with transaction.atomic():
        won = deployment_transition(deployment=queued, expected=(State.QUEUED,), to=State.SUPERSEDED,
                                    reason="r", locked_project=project_lock(project_id=project.pk))
    assert won is not None and won.previous == State.QUEUED
    queued.refresh_from_db()
    assert queued.state == State.SUPERSEDED
