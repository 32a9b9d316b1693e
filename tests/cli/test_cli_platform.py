"""`switchback` against a running platform (see conftest.py for which and why)."""

from __future__ import annotations

import json
import stat

import pytest

from deployments.models import Deployment, Project, State

pytestmark = pytest.mark.django_db(transaction=True)

SHA1, SHA2, SHA3, SHA4, BAD = "1" * 40, "2" * 40, "3" * 40, "4" * 40, "f" * 40


def login(cli, platform):
    done = cli("login", platform["url"], "--token-stdin", stdin=platform["token"] + "\n")
    assert done.returncode == 0, done.stderr
    return done


def test_login_keeps_the_token_in_a_private_file_and_refuses_a_bad_one(cli, platform):
    bad = cli("login", platform["url"], "--token-stdin", stdin="sb_not-a-real-token\n")
    assert bad.returncode == 1 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "Invalid token" in bad.stderr
    assert not (cli.config_dir / "credentials.json").exists()  # nothing kept from a failed login

    as_json = cli("login", platform["url"], "--token-stdin", "--json", stdin=platform["token"] + "\n")
    assert json.loads(as_json.stdout) == {"url": platform["url"], "projects": 1,
                                          "credentials": str(cli.config_dir / "credentials.json")}
    done = login(cli, platform)
    assert "Logged in to" in done.stdout and "1 project visible" in done.stdout
    assert platform["token"] not in done.stdout + done.stderr
    path = cli.config_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": platform["url"], "token": platform["token"]}

    listed = cli("projects", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [p["slug"] for p in json.loads(listed.stdout)] == ["hello"]
    assert "hello" in cli("projects").stdout

    # The environment overrides the file (CI needs no login); a bad token is one line and exit 1.
    wrong = cli("projects", extra_env={"SWITCHBACK_URL": platform["url"], "SWITCHBACK_TOKEN": "sb_wrong"})
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.count("\n") == 1 and "Invalid token" in wrong.stderr and "switchback login" in wrong.stderr

    assert json.loads(cli("logout", "--json").stdout) == {"logged_out": True} and not path.exists()
    after = cli("projects")
    assert after.returncode == 1 and "Not logged in" in after.stderr


def test_deploy_watch_history_logs_status_and_rollback(cli, platform):
    login(cli, platform)
    first = cli("deploy", "hello", SHA1, "--watch", "--interval", "0.1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "hello #1 is live (revision 1)" in first.stdout
    assert "Building." in first.stdout and "building hello at 1111111" in first.stdout  # events as they came

    second = cli("deploy", "hello", SHA2, "--watch", "--json", "--interval", "0.1",
                 "--message", "evil \x1b]0;pwned\x07 [bold]title[/bold]")
    assert second.returncode == 0, second.stderr
    watched = json.loads(second.stdout)
    assert watched["state"] == "succeeded" and watched["is_live"] and watched["weights"] == {"2": 100}
    assert [p["status"] for p in watched["phases"]] == ["done"] * 4
    kinds = [e["kind"] for e in watched["events"]]
    assert "phase" in kinds and "traffic" in kinds and "log" in kinds
    assert platform["runtime"].weights["hello"] == {"2": 100}

    history = json.loads(cli("history", "hello", "--json").stdout)
    assert [(d["number"], d["state"], d["is_live"]) for d in history] == [(2, "succeeded", True),
                                                                          (1, "succeeded", False)]
    table = cli("history", "hello").stdout
    # A commit message cannot drive the terminal: the escape is shown, not sent; no markup applied.
    assert "\x1b" not in table and "\x07" not in table and "\\x1b]0;pwned\\x07" in table
    assert "[bold]title[/bold]" in table
    assert cli("history", "hello", "-n", "1", "--json").stdout.count('"number"') == 1

    logs = cli("logs", "hello", "1")
    assert logs.returncode == 0 and logs.stdout.strip() == "building hello at 1111111"
    every = cli("logs", "hello", "1", "--all", "--json")
    assert {e["kind"] for e in json.loads(every.stdout)} >= {"phase", "log", "traffic"}

    status = json.loads(cli("status", "hello", "--json").stdout)
    assert status["live"]["number"] == 2 and status["in_flight"] is None
    assert [(t["number"], t["state"]) for t in status["rollback_targets"]] == [(1, "warm")]
    shown = cli("status", "hello").stdout
    assert "Live: #2 revision 2" in shown and "warm" in shown and "Rolling out: nothing." in shown

    # No confirmation, no terminal: nothing happens, and the preview said what would change.
    refused = cli("rollback", "hello", "1")
    assert refused.returncode == 1 and "add --yes" in refused.stderr and "back to #1" in refused.stderr
    assert Project.objects.get(slug="hello").live_deployment.number == 2

    rolled = cli("rollback", "hello", "1", "--yes", "--json")
    assert rolled.returncode == 0, rolled.stderr
    body = json.loads(rolled.stdout)
    assert body["number"] == 3 and body["rollback_of"] == 1 and body["trigger"] == "rollback"
    assert Deployment.objects.get(project__slug="hello", number=3).state == State.SUCCEEDED
    assert platform["runtime"].weights["hello"] == {"1": 100}


def _until_held(process) -> list[str]:
    """Read the watch's lines until it says the canary is held (or it ends: then fail)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Held at step"):
            return lines
    raise AssertionError("the watch ended before the canary was held:\n" + "".join(lines)
                         + process.stderr.read())


def test_promote_and_abort_a_held_canary_while_watching(cli, platform):
    login(cli, platform)
    assert cli("deploy", "hello", SHA1, "--watch", "--interval", "0.1").returncode == 0
    Project.objects.filter(slug="hello").update(strategy={"steps": [{"weight": 10, "wait": None}]})

    watching = cli.popen("deploy", "hello", SHA2, "--watch", "--interval", "0.1", "--timeout", "90")
    try:
        lines = _until_held(watching)
        assert any("Step 1/1: 10% to revision 2" in line for line in lines)
        assert "switchback promote hello 2" in lines[-1]
        assert platform["runtime"].weights["hello"] == {"2": 10, "1": 90}
        held = json.loads(cli("status", "hello", "--json").stdout)["in_flight"]
        assert held["number"] == 2 and held["rollout"]["holding"] and held["rollout"]["weights"] == {"2": 10, "1": 90}
        assert "held until promoted" in cli("status", "hello").stdout
        # A second watcher with a timeout: a held canary does not end by itself, so it stops with 6.
        waited = cli("watch", "hello", "--timeout", "1", "--json")
        assert waited.returncode == 6, waited.stderr
        assert json.loads(waited.stdout)["holding"] is True

        promoted = cli("promote", "hello")  # the number defaults to the rollout in flight
        assert promoted.returncode == 0, promoted.stderr
        assert "hello #2: promoted" in promoted.stdout
        rest, _ = watching.communicate(timeout=90)
    finally:
        watching.kill()
    assert watching.returncode == 0, rest
    assert "hello #2 is live" in rest
    assert platform["runtime"].weights["hello"] == {"2": 100}

    watching = cli.popen("deploy", "hello", SHA3, "--watch", "--interval", "0.1", "--timeout", "90")
    try:
        _until_held(watching)
        aborted = cli("abort", "hello", "3", "--json")
        assert aborted.returncode == 0, aborted.stderr
        assert json.loads(aborted.stdout)["state"] == "failed"
        rest, _ = watching.communicate(timeout=90)
    finally:
        watching.kill()
    assert watching.returncode == 3, rest  # the exit code says how it ended: failed
    assert "hello #3 failed: Aborted by dora" in rest
    assert platform["runtime"].weights["hello"] == {"2": 100}

    nothing = cli("promote", "hello")
    assert nothing.returncode == 1 and "Nothing is rolling out in hello" in nothing.stderr
    again = cli("promote", "hello", "3")
    assert again.returncode == 1 and again.stderr.count("\n") == 1  # the API's own message, one line


def test_failures_exit_non_zero_with_the_apis_message(cli, platform):
    login(cli, platform)
    platform["runtime"].fail_build[BAD] = "no Dockerfile"
    failed = cli("deploy", "hello", BAD, "--watch", "--interval", "0.1")
    assert failed.returncode == 3
    assert "hello #1 failed: Build failed: no Dockerfile" in failed.stdout
    as_json = json.loads(cli("logs", "hello", "1", "--json").stdout)
    assert [e["message"] for e in as_json if e["kind"] == "log"] == ["step 1/2 : RUN make"]

    for args, words in [
        (("status", "nope"), "No project with slug 'nope'"),
        (("history", "nope"), "No project with slug 'nope'"),
        (("deploy", "nope", SHA1), "No project with slug 'nope'"),
        (("deploy", "hello", "not-a-sha"), "sha"),
        (("logs", "hello", "42"), "#42 does not exist"),
        (("rollback", "hello", "1", "--yes"), "#1"),  # a failed deployment is no rollback target
        # A slug is one quoted path segment: the request stays under /api/projects/ (unquoted,
        # the dot segments would have sent it to /admin/deployments/).
        (("history", "../../admin"), "Nothing at /api/projects/"),
    ]:
        done = cli(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stdout == "" and done.stderr.count("\n") == 1 and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr

    usage = cli("rollback", "hello", "zero")
    assert usage.returncode == 2  # a usage error is Click's, before any request

    unreachable = cli("projects", extra_env={"SWITCHBACK_URL": "http://127.0.0.1:9", "SWITCHBACK_TOKEN": "sb_x"})
    assert unreachable.returncode == 1 and "Cannot reach http://127.0.0.1:9" in unreachable.stderr


def test_shell_completion_offers_project_names(cli, platform):
    login(cli, platform)
    done = cli(extra_env={"_SWITCHBACK_COMPLETE": "complete_bash", "COMP_WORDS": "switchback status he",
                          "COMP_CWORD": "2"})
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout.split()
    script = cli("--show-completion", "bash")
    assert script.returncode == 0 and "_SWITCHBACK_COMPLETE" in script.stdout
