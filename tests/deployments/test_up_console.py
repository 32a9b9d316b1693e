"""`manage.py up`'s calm console: per-process rotated logs (supervisord's config), one line
per child that had to be restarted (read from supervisord's log), one line per deployment
milestone (read from the phase events)."""

from __future__ import annotations

import configparser

import pytest

from deployments.supervisor import LOG_BACKUPS, Program, RestartNotices, render_config


def _config(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_each_program_logs_to_its_own_rotated_file(tmp_path):
    conf = _config(render_config(programs=[Program("web", ["x"]), Program("worker", ["y"])], var_dir=tmp_path,
                                 cwd=tmp_path))
    assert conf["supervisord"]["silent"] == "true"  # nothing of supervisord's own on our console
    assert conf["supervisord"]["logfile"] == str(tmp_path / "log" / "supervisord.log")
    for name in ("web", "worker"):
        program = conf[f"program:{name}"]
        assert program["stdout_logfile"] == str(tmp_path / "log" / f"{name}.log")
        assert program["stdout_logfile_maxbytes"] == "10MB" and program["stdout_logfile_backups"] == str(LOG_BACKUPS)
        assert program["redirect_stderr"] == "true"


def test_verbose_sends_every_log_to_the_console(tmp_path):
    conf = _config(render_config(programs=[Program("web", ["x"])], var_dir=tmp_path, cwd=tmp_path, verbose=True))
    assert conf["supervisord"]["silent"] == "false"
    assert conf["program:web"]["stdout_logfile"] == "/dev/fd/1"


def test_a_restarted_child_is_one_line(tmp_path):
    log = tmp_path / "log" / "supervisord.log"
    log.parent.mkdir()
    log.write_text("2026-12-01 10:00:00,000 WARN exited: web (exit status 1; not expected)\n")  # before `up`
    notices = RestartNotices(tmp_path)
    assert notices.read() == []
    with log.open("a") as out:
        out.write("2026-12-01 10:00:01,000 INFO spawned: 'worker' with pid 12\n"
                  "2026-12-01 10:00:02,000 WARN exited: worker (terminated by SIGKILL; not expected)\n"
                  "2026-12-01 10:00:03,000 INFO exited: beat (exit status 0; expected)\n"
                  "2026-12-01 10:00:04,000 INFO gave up: beat entered FATAL state, too many start retries\n"
                  "2026-12-01 10:00:05,000 WARN exited: web (exit status 3; not exp")  # half a line
    lines = notices.read()
    assert len(lines) == 2
    assert lines[0].startswith("worker stopped unexpectedly (terminated by SIGKILL); restarting it")
    assert lines[1].startswith("beat keeps failing to start")
    with log.open("a") as out:
        out.write("ected)\n")
    assert [line.split(" (")[0] for line in notices.read()] == ["web stopped unexpectedly"]
    log.write_text("2026-12-01 10:01:00,000 WARN exited: web (exit status 9; not expected)\n")  # rotated
    assert len(notices.read()) == 1


@pytest.mark.django_db
def test_the_feed_says_starting_live_failed_and_rollback(make_project, memory_runtime, user):
    from deployments.console_feed import console_feed_after, console_feed_latest_id
    from deployments.services import deployment_request, deployment_rollback
    from tests.rollout import rollout_drive_until_wait

    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    memory_runtime.commits["a" * 40] = ("Fix the login page", "Ada")
    after = console_feed_latest_id()
    rollout_drive_until_wait(deployment_request(project=project, sha="a" * 40, actor=user))
    rollout_drive_until_wait(deployment_request(project=project, sha="b" * 40, actor=user))
    memory_runtime.fail_build["c" * 40] = "no Dockerfile"
    rollout_drive_until_wait(deployment_request(project=project, sha="c" * 40, actor=user))
    rollout_drive_until_wait(deployment_rollback(project=project, number=1, actor=user))
    texts = [line.text for line in console_feed_after(after_id=after) if line.text]
    assert texts[0] == f'hello #1 starting: {"a" * 7} "Fix the login page"'  # the message from the checkout
    assert texts[1].startswith(f"hello #1 live: {'a' * 7} in ")
    assert texts[2] == f"hello #2 starting: {'b' * 7}" and texts[3].startswith("hello #2 live")
    assert texts[4] == f"hello #3 starting: {'c' * 7}" and texts[5].startswith("hello #3 failed: Build failed")
    assert texts[6] == f"hello #4 starting: rollback to #1 ({'a' * 7})"
    assert texts[7].startswith(f"hello #4 live: rolled back to #1 ({'a' * 7})")
    assert len(texts) == 8  # nothing else: no building/verifying/switching lines
    assert console_feed_after(after_id=console_feed_latest_id()) == []
