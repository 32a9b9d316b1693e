"""The rollout state machine with a controllable clock (no sleeps): canary weight sequences,
promote (one step or all), abort, a newer merge mid-canary, scheduled switches across a DST
change, deploy windows and freezes."""

from datetime import UTC, datetime, timedelta

import pytest

from deployments import engine
from deployments.errors import Conflict, ValidationError
from deployments.listeners import RolloutEvent, listener_register
from deployments.models import AuditEntry, Deployment, DeploymentSchedule, Project, State, Trigger
from deployments.services import (
    deployment_abort,
    deployment_from_webhook,
    deployment_promote,
    deployment_request,
    deployment_rollback,
    deployment_schedule_change,
    deployment_window_override,
    project_update,
)
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db
drive = rollout_drive_until_wait


class Clock:
    """Stands in for django.utils.timezone.now: moves only when the test moves it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def set(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # a Tuesday
    monkeypatch.setattr("django.utils.timezone.now", clock)
    monkeypatch.setattr("deployments.waits.sleep", clock.advance)  # the engine's last sub-second wait
    return clock


@pytest.fixture
def project(make_project, memory_runtime, clock):
    return make_project(keep_warm_seconds=300, watch_seconds=0)


def deploy(project, user, sha):
    return drive(deployment_request(project=project, sha=sha * 40, actor=user))


def merge(project, sha):
    deployment, _ = deployment_from_webhook(project=project, sha=sha * 40, trigger=Trigger.MERGE,
                                            message="merged", author="octo", sender="octo")
    return drive(deployment)


def set_strategy(project, user, **fields):
    project_update(project=Project.objects.get(pk=project.pk), actor=user, **fields)
    project.refresh_from_db()  # deployments snapshot the settings of the object they are given


def traffic(memory_runtime) -> list[dict]:
    return [c[2] for c in memory_runtime.calls if c[0] == "traffic"]


def weights(memory_runtime) -> dict:
    return memory_runtime.weights["hello"]


# --- canary weight sequences -------------------------------------------------------------


def test_canary_weights_follow_the_steps_on_the_clock(project, user, memory_runtime, clock):
    deploy(project, user, "a")
    set_strategy(project, user, strategy={"steps": [{"weight": 10, "wait": 60}, {"weight": 50, "wait": 120}]})
    d = deploy(project, user, "b")
    assert weights(memory_runtime) == {"2": 10, "1": 90}
    clock.advance(59)
    assert drive(d).state == State.SWITCHING and weights(memory_runtime) == {"2": 10, "1": 90}
    clock.advance(1)
    drive(d)
    assert weights(memory_runtime) == {"2": 50, "1": 50}
    clock.advance(119)
    assert drive(d).state == State.SWITCHING and weights(memory_runtime) == {"2": 50, "1": 50}
    clock.advance(1)
    assert drive(d).state == State.SUCCEEDED
    assert traffic(memory_runtime)[-4:] == [{"1": 100}, {"2": 10, "1": 90}, {"2": 50, "1": 50}, {"2": 100}]


def test_abort_mid_canary_gives_all_traffic_back(project, user, memory_runtime, clock):
    deploy(project, user, "a")
    set_strategy(project, user, strategy={"steps": [{"weight": 10, "wait": 60}, {"weight": 50, "wait": 60}]})
    d = deploy(project, user, "b")
    clock.advance(60)
    drive(d)
    assert weights(memory_runtime) == {"2": 50, "1": 50}
    deployment_abort(project=project, number=d.number, actor=user)
    assert weights(memory_runtime) == {"1": 100}
    clock.advance(3600)
    assert drive(d).state == State.FAILED and weights(memory_runtime) == {"1": 100}


def test_promote_moves_one_step_and_promote_full_skips_the_rest(project, user, memory_runtime, clock):
    deploy(project, user, "a")
    set_strategy(project, user, strategy={"steps": [{"weight": 10, "wait": None}, {"weight": 25, "wait": None},
                                                    {"weight": 50, "wait": None}]})
    d = deploy(project, user, "b")
    assert weights(memory_runtime) == {"2": 10, "1": 90}
    deployment_promote(project=project, number=d.number, actor=user)
    drive(d)
    assert weights(memory_runtime) == {"2": 25, "1": 75}
    deployment_promote(project=project, number=d.number, actor=user, full=True)
    assert drive(d).state == State.SUCCEEDED
    assert traffic(memory_runtime)[-3:] == [{"2": 10, "1": 90}, {"2": 25, "1": 75}, {"2": 100}]  # never 50
    audit = AuditEntry.objects.filter(action="deployment.promote").order_by("id")
    assert [a.summary for a in audit] == [f"#{d.number}: promoted past step 1/3 (10% of traffic)",
                                          f"#{d.number}: promoted to 100%, skipping every remaining step"]


def test_a_newer_merge_mid_canary_resets_to_stable_then_starts_over(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"steps": [{"weight": 10, "wait": 60}, {"weight": 50, "wait": 60}]})
    older = merge(project, "b")
    clock.advance(60)
    drive(older)
    assert weights(memory_runtime) == {"2": 50, "1": 50}
    newer = merge(project, "c")
    older.refresh_from_db()
    assert older.state == State.SUPERSEDED and "Superseded by #3 mid-canary" in older.failure_reason
    assert ("hello", "2") not in memory_runtime.running  # it never went live: removed
    assert weights(memory_runtime) == {"3": 10, "1": 90}
    clock.advance(60)
    drive(newer)
    clock.advance(60)
    assert drive(newer).state == State.SUCCEEDED
    assert traffic(memory_runtime)[-6:] == [{"2": 10, "1": 90}, {"2": 50, "1": 50}, {"1": 100},
                                            {"3": 10, "1": 90}, {"3": 50, "1": 50}, {"3": 100}]
    assert older.events.filter(kind="traffic", message__startswith="Reset: 100% of traffic back to revision 1").exists()


# --- scheduled promotion -----------------------------------------------------------------


def test_a_scheduled_merge_is_warmed_now_and_switches_at_its_time(project, user, memory_runtime, clock,
                                                                  django_capture_on_commit_callbacks):
    merge(project, "a")
    fired = []
    unregister = listener_register(event=RolloutEvent.PROMOTION_FIRED, listener=fired.append)
    try:
        set_strategy(project, user, strategy={"at": "2026-12-01T15:00", "tz": "Europe/Berlin"})  # 14:00 UTC
        d = merge(project, "b")
        assert d.state == State.SWITCHING and ("hello", "2") in memory_runtime.running
        assert weights(memory_runtime) == {"1": 100}
        schedule = DeploymentSchedule.objects.get(deployment=d)
        assert schedule.at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC) and schedule.fired_at is None
        clock.set(datetime(2026, 12, 1, 13, 59, 59, 700000, tzinfo=UTC))
        assert engine.rollout_step(deployment_id=d.pk) == pytest.approx(0.05)  # wakes 250 ms early
        assert weights(memory_runtime) == {"1": 100}
        clock.set(datetime(2026, 12, 1, 13, 59, 59, 800000, tzinfo=UTC))  # woke up early: sleeps the rest
        with django_capture_on_commit_callbacks(execute=True):
            assert drive(d).state == State.SUCCEEDED and weights(memory_runtime) == {"2": 100}
        schedule.refresh_from_db()
        assert schedule.fired_at == schedule.at == d.live_at
        assert [f.pk for f in fired] == [d.pk]
    finally:
        unregister()


def test_a_long_wait_is_slept_in_slices_that_end_on_the_time(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"at": "2026-12-01T10:12:30", "tz": "UTC"})
    d = merge(project, "b")
    assert engine.rollout_step(deployment_id=d.pk) == 300.0
    clock.advance(600)
    assert engine.rollout_step(deployment_id=d.pk) == 149.75  # to 10:12:30, less the early wake-up


def test_a_schedule_across_the_dst_change_fires_at_local_time(project, user, memory_runtime, clock):
    clock.set(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))  # Saturday, Berlin on summer time
    merge(project, "a")
    set_strategy(project, user, strategy={"at": "2026-10-25T14:00", "tz": "Europe/Berlin"})
    d = merge(project, "b")
    clock.advance(24 * 3600)  # Sunday 12:00 UTC = 13:00 Berlin (winter time now): not yet
    assert drive(d).state == State.SWITCHING
    clock.advance(3600 - 1)
    assert drive(d).state == State.SWITCHING
    clock.advance(1)  # 13:00 UTC = 14:00 Berlin
    assert drive(d).state == State.SUCCEEDED
    assert d.live_at == datetime(2026, 10, 25, 13, 0, tzinfo=UTC)


def test_the_time_can_be_changed_brought_forward_or_cancelled_until_it_fires(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"at": "2026-12-02T09:00", "tz": "UTC"})
    d = merge(project, "b")
    later = deployment_schedule_change(project=project, number=d.number, actor=user,
                                       data={"at": "2026-12-03T09:00", "tz": "UTC"})
    assert later.schedule.at == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="in the past"):
        deployment_schedule_change(project=project, number=d.number, actor=user,
                                   data={"at": "2026-12-01T09:00", "tz": "UTC"})
    clock.set(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))  # the old time: nothing happens
    assert drive(d).state == State.SWITCHING
    deployment_promote(project=project, number=d.number, actor=user)  # brought forward
    assert drive(d).state == State.SUCCEEDED
    with pytest.raises(Conflict, match="fired"):
        deployment_schedule_change(project=project, number=d.number, actor=user,
                                   data={"at": "2026-12-04T09:00", "tz": "UTC"})
    # Cancelled: an abort before the time.
    set_strategy(project, user, strategy={"at": "2026-12-05T09:00", "tz": "UTC"})
    e = merge(project, "c")
    deployment_abort(project=project, number=e.number, actor=user)
    clock.set(datetime(2026, 12, 5, 9, 0, tzinfo=UTC))
    assert drive(e).state == State.FAILED and weights(memory_runtime) == {"2": 100}
    assert DeploymentSchedule.objects.get(deployment=e).fired_at is None


def test_a_project_schedule_already_past_holds_a_new_merge_until_someone_acts(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"at": "2026-12-01T11:00", "tz": "UTC"})
    clock.set(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    d = merge(project, "b")
    assert d.state == State.SWITCHING and weights(memory_runtime) == {"1": 100}
    assert DeploymentSchedule.objects.get(deployment=d).at is None
    clock.advance(86400)
    assert drive(d).state == State.SWITCHING
    deployment_schedule_change(project=project, number=d.number, actor=user, data={"at": "2026-12-02T13:00"})
    clock.set(datetime(2026, 12, 2, 13, 0, tzinfo=UTC))
    assert drive(d).state == State.SUCCEEDED


def test_a_scheduled_canary_starts_its_steps_at_the_time(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"at": "2026-12-01T12:00", "tz": "UTC",
                                          "steps": [{"weight": 10, "wait": 60}]})
    d = merge(project, "b")
    assert weights(memory_runtime) == {"1": 100}
    clock.set(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    drive(d)
    assert weights(memory_runtime) == {"2": 10, "1": 90}
    clock.advance(60)
    assert drive(d).state == State.SUCCEEDED


def test_a_newer_merge_supersedes_one_waiting_for_its_schedule(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"at": "2026-12-01T12:00", "tz": "UTC"})
    older = merge(project, "b")
    newer = merge(project, "c")
    older.refresh_from_db()
    assert older.state == State.SUPERSEDED and "while it waited to switch" in older.failure_reason
    clock.set(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    assert drive(newer).state == State.SUCCEEDED and weights(memory_runtime) == {"3": 100}


# --- deploy windows ----------------------------------------------------------------------

OFFICE = {"tz": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00"}


def test_a_merge_outside_the_window_is_warmed_then_switches_when_it_opens(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, deploy_window=OFFICE)
    clock.set(datetime(2026, 12, 4, 17, 0, tzinfo=UTC))  # Friday 18:00 Berlin
    d = merge(project, "b")
    assert d.state == State.SWITCHING and ("hello", "2") in memory_runtime.running
    assert weights(memory_runtime) == {"1": 100}
    assert d.progress["window_until"] == "2026-12-07T08:00:00+00:00"
    assert d.events.filter(kind="gate", message__contains="outside the deploy window").count() == 1
    clock.set(datetime(2026, 12, 7, 7, 59, 59, tzinfo=UTC))
    assert drive(d).state == State.SWITCHING
    assert d.events.filter(kind="gate", message__contains="outside the deploy window").count() == 1  # said once
    clock.set(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))  # Monday 09:00 Berlin
    assert drive(d).state == State.SUCCEEDED and weights(memory_runtime) == {"2": 100}


def test_a_freeze_holds_merges_but_never_a_rollback(project, user, memory_runtime, clock):
    merge(project, "a")
    merge(project, "b")
    set_strategy(project, user, deploy_window={"tz": "UTC", "freeze": [{"from": "2026-12-01", "to": "2026-12-02",
                                                                       "reason": "launch week"}]})
    d = merge(project, "c")
    assert d.state == State.SWITCHING and "launch week" in d.progress["window_reason"]
    rollback = drive(deployment_rollback(project=project, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED and weights(memory_runtime) == {"1": 100}


def test_an_override_needs_a_reason_and_is_audited(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, deploy_window={"tz": "UTC", "days": ["sat"]})
    d = merge(project, "b")
    with pytest.raises(Conflict, match="deploy window"):
        deployment_promote(project=project, number=d.number, actor=user)
    for reason in ("", "   ", None, 42):
        with pytest.raises(ValidationError, match="needs a reason"):
            deployment_window_override(project=project, number=d.number, actor=user, reason=reason)
    assert drive(d).state == State.SWITCHING
    deployment_window_override(project=project, number=d.number, actor=user, reason="hotfix for checkout")
    assert drive(d).state == State.SUCCEEDED
    entry = AuditEntry.objects.get(action="deployment.window_override")
    assert entry.data["reason"] == "hotfix for checkout" and entry.actor == user


def test_a_newer_merge_supersedes_one_waiting_for_the_window(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, deploy_window={"tz": "UTC", "days": ["wed"]})
    older = merge(project, "b")
    newer = merge(project, "c")
    older.refresh_from_db()
    assert older.state == State.SUPERSEDED and newer.state == State.SWITCHING
    clock.set(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))  # Wednesday
    assert drive(newer).state == State.SUCCEEDED and weights(memory_runtime) == {"3": 100}
    assert Deployment.objects.get(pk=older.pk).live_at is None


def test_a_step_that_waits_until_a_wall_time(project, user, memory_runtime, clock):
    merge(project, "a")
    clock.set(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))  # Saturday, Berlin on summer time
    set_strategy(project, user, strategy={"tz": "Europe/Berlin", "steps": [
        {"weight": 10, "until": "2026-10-25T09:00"}, {"weight": 50, "wait": 60}]})
    d = merge(project, "b")
    assert weights(memory_runtime) == {"2": 10, "1": 90}
    clock.set(datetime(2026, 10, 25, 7, 59, 59, tzinfo=UTC))  # 08:59:59 Berlin (winter time since 03:00)
    assert drive(d).state == State.SWITCHING and weights(memory_runtime) == {"2": 10, "1": 90}
    clock.advance(1)
    drive(d)
    assert weights(memory_runtime) == {"2": 50, "1": 50}
    with pytest.raises(ValidationError, match="step 1 until.*in the past"):
        set_strategy(project, user, strategy={"tz": "UTC", "steps": [{"weight": 10, "until": "2026-10-01T09:00"}]})
    with pytest.raises(ValidationError, match="not both"):
        set_strategy(project, user, strategy={"steps": [{"weight": 10, "until": "2027-10-01T09:00", "wait": 5}]})


def test_a_window_closing_mid_canary_does_not_strand_the_split(project, user, memory_runtime, clock):
    merge(project, "a")
    set_strategy(project, user, strategy={"steps": [{"weight": 10, "wait": 3600}]},
                 deploy_window={"tz": "UTC", "from": "09:00", "to": "10:30"})
    d = merge(project, "b")  # 10:00: open
    assert weights(memory_runtime) == {"2": 10, "1": 90}
    clock.advance(3600)  # 11:00: the window has closed, the canary goes on
    assert drive(d).state == State.SUCCEEDED and weights(memory_runtime) == {"2": 100}


def test_opening_the_window_hands_the_waiting_rollout_out_at_once(project, user, memory_runtime, clock,
                                                                  django_capture_on_commit_callbacks):
    merge(project, "a")
    set_strategy(project, user, deploy_window={"tz": "UTC", "days": ["sun"]})
    d = merge(project, "b")
    assert d.progress["window_waiting"] is True
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        set_strategy(project, user, deploy_window={})
    assert len(callbacks) == 1  # its next step is enqueued, not left to the 60 s slice
    assert drive(d).state == State.SUCCEEDED
