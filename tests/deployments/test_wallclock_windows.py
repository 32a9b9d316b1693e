"""Wall times in named zones and deploy windows: pure functions, with the clock passed in."""

from datetime import UTC, datetime

import pytest

from deployments.errors import ValidationError
from deployments.strategies import strategy_schedule_refuse_past, strategy_validate
from deployments.wallclock import wall_time_resolve
from deployments.windows import window_state, window_validate


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- wall times across DST ---------------------------------------------------------------


def test_a_schedule_set_before_the_autumn_change_fires_at_the_wall_time_meant():
    # Saturday noon UTC, Berlin on summer time (+02:00); Sunday 14:00 is after the change (+01:00).
    now = utc(2026, 10, 24, 12, 0)
    wall = wall_time_resolve(at="2026-10-25T14:00", tz="Europe/Berlin", now=now)
    assert wall.at == utc(2026, 10, 25, 13, 0)  # not 12:00 UTC, which "now + 26 h" would give
    assert wall.note == ""


def test_a_schedule_set_before_the_spring_change_fires_at_the_wall_time_meant():
    wall = wall_time_resolve(at="2026-03-29T14:00", tz="Europe/Berlin", now=utc(2026, 3, 28, 12, 0))
    assert wall.at == utc(2026, 3, 29, 12, 0)  # +02:00 after the change


def test_a_wall_time_skipped_by_the_clocks_is_refused_with_a_message():
    with pytest.raises(ValidationError, match="does not exist in Europe/Berlin"):
        wall_time_resolve(at="2026-03-29T02:30", tz="Europe/Berlin", now=utc(2026, 3, 1))


def test_a_wall_time_that_happens_twice_means_the_first_and_says_so():
    wall = wall_time_resolve(at="2026-10-25T02:30", tz="Europe/Berlin", now=utc(2026, 10, 1))
    assert wall.at == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first of the two
    assert "happens twice" in wall.note and "+02:00" in wall.note


def test_a_time_in_the_past_is_refused_with_a_message():
    with pytest.raises(ValidationError, match="is in the past"):
        wall_time_resolve(at="2026-12-01T10:00", tz="UTC", now=utc(2026, 12, 1, 10, 0))


@pytest.mark.parametrize("tz", ["../../etc/passwd", "Not/AZone", "", "/etc/localtime", "Europe/Berlin\x00",
                                "a" * 100, 42, None])
def test_hostile_time_zones_are_refused(tz):
    with pytest.raises(ValidationError, match="tz:"):
        wall_time_resolve(at="2027-01-01T10:00", tz=tz, now=utc(2026, 12, 1))


@pytest.mark.parametrize("at", ["tomorrow", "2027-01-01T10:00+01:00", "2027-02-30T10:00", "2027-01-01",
                                "2027-01-01T25:00", 1700000000, None, ["2027-01-01T10:00"]])
def test_malformed_times_are_refused(at):
    with pytest.raises(ValidationError, match="at:"):
        wall_time_resolve(at=at, tz="UTC", now=utc(2026, 12, 1))


def test_a_scheduled_strategy_is_data_checked_for_shape_and_refused_when_written_in_the_past():
    value = strategy_validate({"at": "2026-12-03T14:00", "tz": "Europe/Berlin",
                               "steps": [{"weight": 10, "wait": 60}]})
    assert value == {"at": "2026-12-03T14:00", "tz": "Europe/Berlin", "steps": [{"weight": 10, "wait": 60}]}
    strategy_schedule_refuse_past(value, now=utc(2026, 12, 1))
    with pytest.raises(ValidationError, match="in the past"):
        strategy_schedule_refuse_past(value, now=utc(2026, 12, 4))
    with pytest.raises(ValidationError, match='needs "at"'):
        strategy_validate({"tz": "UTC"})


# --- windows and freezes -----------------------------------------------------------------

OFFICE = {"tz": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00"}


def test_inside_the_window_is_open():
    window = window_validate(OFFICE)
    assert window_state(window=window, now=utc(2026, 12, 2, 10, 0)).open  # Wed 11:00 Berlin


def test_friday_evening_waits_for_monday_morning_local_time():
    window = window_validate(OFFICE)
    state = window_state(window=window, now=utc(2026, 12, 4, 16, 30))  # Fri 17:30 Berlin
    assert not state.open
    assert state.opens_at == utc(2026, 12, 7, 8, 0)  # Mon 09:00 CET
    assert "outside the deploy window" in state.reason and "Mon, Tue, Wed, Thu, Fri 09:00-17:00" in state.reason


def test_a_closed_weekend_across_the_dst_change_opens_at_the_local_hour():
    window = window_validate(OFFICE)
    state = window_state(window=window, now=utc(2026, 10, 23, 16, 0))  # Fri 18:00 CEST
    assert state.opens_at == utc(2026, 10, 26, 8, 0)  # Mon 09:00 CET (+01:00 since Sunday)


def test_a_freeze_blocks_its_dates_and_says_why():
    window = window_validate({**OFFICE, "freeze": [{"from": "2026-12-21", "to": "2027-01-04",
                                                    "reason": "year-end freeze"}, "2026-12-17"]})
    state = window_state(window=window, now=utc(2026, 12, 22, 10, 0))  # Tue, frozen
    assert not state.open and "year-end freeze" in state.reason and "2026-12-21 to 2027-01-04" in state.reason
    assert state.opens_at == utc(2027, 1, 5, 8, 0)  # Tue after the freeze, 09:00 Berlin
    single = window_state(window=window, now=utc(2026, 12, 17, 10, 0))  # the single blocked Thursday
    assert not single.open and single.opens_at == utc(2026, 12, 18, 8, 0)


def test_an_empty_window_is_always_open_and_a_whole_day_window_is_continuous():
    assert window_state(window=window_validate({}), now=utc(2026, 12, 5)).open
    always = window_validate({"tz": "America/New_York"})
    assert always["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] and always["to"] == "24:00"
    assert window_state(window=always, now=utc(2026, 11, 1, 6, 30)).open  # during the US change


@pytest.mark.parametrize("window, message", [
    ([], "give an object"),
    ({"tz": "Mars/Olympus"}, "unknown time zone"),
    ({"days": []}, "non-empty list"),
    ({"days": ["funday"]}, "non-empty list"),
    ({"from": "17:00", "to": "09:00"}, "must be after"),
    ({"from": "9am"}, "HH:MM"),
    ({"to": "24:30"}, "not a time of day"),
    ({"freeze": ["2026-13-01"]}, "YYYY-MM-DD"),
    ({"freeze": [{"from": "2027-01-04", "to": "2026-12-20"}]}, "on or after"),
    ({"freeze": [{"from": "2026-01-01", "to": "2030-01-01"}]}, "at most 366 days"),
    ({"freeze": ["2026-12-24"] * 51}, "at most 50"),
    ({"freeze": [{"from": "2026-12-24", "reason": "x" * 201}]}, "at most 200"),
    ({"hours": [9, 17]}, "unknown keys: hours"),
])
def test_hostile_windows_are_refused_with_a_message(window, message):
    with pytest.raises(ValidationError, match=message):
        window_validate(window)
