"""The `switchback` commands: thin, each one API call or two, then render."""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer
from rich.text import Text

from . import config, render
from .client import Api
from .errors import ApiError, CliError, Exit
from .render import err, out, safe
from .watch import event_line, rollout_watch

app = typer.Typer(
    name="switchback",
    help="Deploy, watch, promote and roll back on a Switchback platform, through its REST API.",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
)

ACTIVE = ("queued", "building", "starting", "verifying", "switching")


def _complete_project(incomplete: str) -> list[str]:
    """Shell completion of project names: asks the platform, quietly gives up if it cannot."""
    try:
        with Api(config.credentials_load()) as api:
            return [p["slug"] for p in api.projects() if str(p.get("slug", "")).startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion must never print a traceback into a shell
        return []


Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]
Project = Annotated[str, typer.Argument(help="The project's slug.", autocompletion=_complete_project,
                                        show_default=False)]
Number = Annotated[int, typer.Argument(help="The deployment's number (#N in the history).", min=1,
                                       show_default=False)]
OptionalNumber = Annotated[int | None, typer.Argument(
    help="The deployment's number (default: the rollout in flight).", min=1, show_default=False)]
Interval = Annotated[float, typer.Option(help="Seconds between polls while watching.", min=0.1, max=60)]
Timeout = Annotated[float | None, typer.Option(help="Stop watching after this many seconds (exit 6).", min=1)]


def api() -> Api:
    return Api(config.credentials_load())


def _finish(watched, slug: str, as_json: bool) -> None:
    state = watched.state
    if as_json:
        render.json_print({**state, "events": watched.events})
    else:
        number = state.get("number")
        if watched.code == Exit.OK:
            out.print(Text(f"{safe(slug)} #{number} is live (revision {safe(state.get('revision'))}).",
                           style="bold green"))
        elif watched.code == Exit.TIMEOUT:
            out.print(Text(f"{safe(slug)} #{number} is still {safe(state.get('state'))}: stopped watching.",
                           style="yellow"))
        else:
            reason = state.get("failure_reason")
            out.print(Text(f"{safe(slug)} #{number} {safe(state.get('state'))}"
                           + (f": {' '.join(safe(reason).split())}" if reason else "."), style="bold red"))
    raise typer.Exit(int(watched.code))


def _watch(client: Api, slug: str, number: int, *, as_json: bool, interval: float, timeout: float | None):
    watched = rollout_watch(client, slug, number, console=out, interval=interval, timeout=timeout, quiet=as_json)
    _finish(watched, slug, as_json)


def _in_flight(client: Api, slug: str) -> int:
    for deployment in client.deployments(slug, limit=25):
        if deployment.get("state") in ACTIVE:
            return int(deployment["number"])
    raise CliError(f"Nothing is rolling out in {slug}: name the deployment's number.")


@app.command()
def login(
    url: Annotated[str, typer.Argument(help="The platform's URL, e.g. https://switchback.example.com")],
    token_stdin: Annotated[bool, typer.Option(
        "--token-stdin", help="Read the token from standard input (e.g. from a secret store).")] = False,
    as_json: Json = False,
) -> None:
    """Store the platform's URL and your API token (asked hidden, or from stdin or $SWITCHBACK_TOKEN)
    in your config folder, readable by you alone. Make a token on the dashboard's Account page."""
    url = config.url_normalize(url)
    if token_stdin:
        token = sys.stdin.readline()
    elif os.environ.get("SWITCHBACK_TOKEN"):
        token = os.environ["SWITCHBACK_TOKEN"]
    else:
        token = typer.prompt("API token", hide_input=True, err=True)
    credentials = config.Credentials(url=url, token=config.token_check(token))
    with Api(credentials) as client:
        projects = client.projects()  # proves the URL and the token before anything is stored
    path = config.credentials_save(url=url, token=credentials.token)
    if url.startswith("http://") and not url.split("//", 1)[1].startswith(("127.", "localhost", "[::1]")):
        err.print(Text("Warning: plain http: the token crosses the network unencrypted.", style="yellow"))
    if as_json:
        return render.json_print({"url": url, "projects": len(projects), "credentials": str(path)})
    out.print(f"Logged in to {safe(url)} ({len(projects)} project{'s' * (len(projects) != 1)} visible). "
              f"Token kept in {path}.")


@app.command()
def logout(as_json: Json = False) -> None:
    """Forget the stored URL and token."""
    forgotten = config.credentials_forget()
    if as_json:
        return render.json_print({"logged_out": forgotten})
    out.print("Logged out." if forgotten else "Not logged in.")


@app.command()
def projects(as_json: Json = False) -> None:
    """The projects you can see."""
    with api() as client:
        found = client.projects()
    if as_json:
        return render.json_print(found)
    if not found:
        out.print("No projects (or none you are a member of).")
        return
    out.print(render.projects_table(found))


@app.command()
def status(project: Project, as_json: Json = False) -> None:
    """The live revision, the rollout in flight, and what a rollback could go back to (warm or cold)."""
    with api() as client:
        detail = client.project(project)
        recent = client.deployments(project, limit=25)
        targets = client.rollback_targets(project)
        live = next((d for d in recent if d.get("is_live")), None)
        if live is None and detail.get("live_deployment"):
            live = client.deployment(project, detail["live_deployment"])
            live.pop("events", None)
            live.pop("config", None)
        flying = next((d for d in recent if d.get("state") in ACTIVE), None)
        rollout = None
        if flying is not None:
            rollout = client.rollout(project, flying["number"], after=2**62)  # its state, no events
            rollout.pop("events", None)
    if as_json:
        return render.json_print({"project": project, "pinned": bool(detail.get("pinned_at")), "live": live,
                                  "in_flight": flying and {**flying, "rollout": rollout},
                                  "rollback_targets": targets})
    head = Text(safe(detail.get("name") or project), style="bold")
    head.append(f"  ({safe(detail.get('slug'))}, {safe(detail.get('runtime'))})", style="dim")
    if detail.get("pinned_at"):
        head.append(f"  pinned by {safe(detail.get('pinned_by_name'))}", style="yellow")
    out.print(head)
    if live:
        out.print(Text(f"Live: #{live['number']} revision {safe(live.get('revision'))} "
                       f"({safe((live.get('commit_sha') or '')[:7])}) since {render.when(live.get('live_at'))}"
                       f"  {render.first_line(live.get('message'), 60)}"))
    else:
        out.print("Live: nothing yet.")
    if flying:
        line = Text(f"Rolling out: #{flying['number']} {safe(flying.get('state'))}", style="magenta")
        if rollout and rollout.get("weights"):
            line.append("  " + ", ".join(f"revision {safe(r)} {w}%" for r, w in rollout["weights"].items()))
        if rollout and rollout.get("holding"):
            line.append("  (held until promoted)", style="bold yellow")
        out.print(line)
    else:
        out.print("Rolling out: nothing.")
    if targets:
        out.print(Text("Rollback targets:", style="bold"))
        out.print(render.targets_table(targets))
    else:
        out.print("Rollback targets: none yet (a rollback needs an earlier revision that went live).")


@app.command()
def deploy(
    project: Project,
    sha: Annotated[str, typer.Argument(help="The full 40-character commit sha.", show_default=False)],
    message: Annotated[str | None, typer.Option(help="A note for the history (default: the commit's).")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the rollout until it ends; the exit "
                                        "code says how (0 live, 3 failed, 4 cancelled, 5 superseded, 6 timeout).")]
    = False,
    interval: Interval = 0.5, timeout: Timeout = None, as_json: Json = False,
) -> None:
    """Deploy a commit: build it, start it beside the live revision, switch (or canary) to it."""
    with api() as client:
        deployment = client.deploy(project, sha=sha, message=message)
        if watch:
            if not as_json:
                out.print(f"Deploying {safe(project)} #{deployment['number']} ({safe(sha[:7])}).")
            _watch(client, project, deployment["number"], as_json=as_json, interval=interval, timeout=timeout)
    if as_json:
        return render.json_print(deployment)
    out.print(f"Queued {safe(project)} #{deployment['number']}: follow it with "
              f"`switchback watch {safe(project)} {deployment['number']}`.")


@app.command("watch")
def watch_command(project: Project, number: OptionalNumber = None, interval: Interval = 0.5,
                  timeout: Timeout = None, as_json: Json = False) -> None:
    """Follow a rollout live until it ends (default: the one in flight); exit code as for `deploy --watch`."""
    with api() as client:
        number = number or _in_flight(client, project)
        _watch(client, project, number, as_json=as_json, interval=interval, timeout=timeout)


@app.command()
def rollback(
    project: Project, number: Number,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    pin: Annotated[bool, typer.Option(help="Also pin the project: later merges build but do not switch.")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow it until it is live.")] = False,
    interval: Interval = 0.5, timeout: Timeout = None, as_json: Json = False,
) -> None:
    """Send traffic back to an earlier deployment's revision, without a rebuild."""
    with api() as client:
        if not yes:
            preview = client.rollback_preview(project, number)
            _preview_print(project, number, preview)
            if not sys.stdin.isatty():
                raise CliError("Not rolling back without confirmation: add --yes.")
            if not typer.confirm(f"Roll {project} back to #{number}?", err=True):
                raise CliError("Rollback not confirmed.")
        deployment = client.rollback(project, number, pin=pin)
        if watch:
            _watch(client, project, deployment["number"], as_json=as_json, interval=interval, timeout=timeout)
    if as_json:
        return render.json_print(deployment)
    state = "live" if deployment.get("is_live") else safe(deployment.get("state"))
    out.print(f"Rollback to #{number} is #{deployment['number']} ({state}).")


def _preview_print(project: str, number: int, preview: dict) -> None:
    target = preview.get("target") or {}
    line = Text(f"Rolling {safe(project)} back to #{number} (revision {safe(preview.get('revision'))})")
    if target.get("state"):
        line.append(f": {safe(target['state'])}", style="bold")
        line.append(" (traffic moves at once)" if target["state"] == "warm" else " (it starts, is probed, then "
                    "switches)" if target["state"] == "cold" else f" {safe(target.get('reason'))}")
    err.print(line)
    if preview.get("image_live") != preview.get("image_target"):
        err.print(Text(f"  image {safe(preview.get('image_live'))} → {safe(preview.get('image_target'))}"))
    for key, label in (("env_added", "env added"), ("env_removed", "env removed"), ("env_changed", "env changed")):
        if preview.get(key):
            err.print(Text(f"  {label}: {', '.join(safe(n) for n in preview[key])}"))
    for change in preview.get("settings") or []:
        err.print(Text(f"  {safe(change.get('label'))}: {safe(change.get('live'))} → {safe(change.get('target'))}"))


def _act(name: str, project: str, number: int | None, as_json: bool, done: str) -> None:
    with api() as client:
        number = number or _in_flight(client, project)
        deployment = client.action(project, number, name)
    if as_json:
        return render.json_print(deployment)
    out.print(f"{safe(project)} #{deployment['number']}: {done} (now {safe(deployment.get('state'))}).")


@app.command()
def promote(project: Project, number: OptionalNumber = None, as_json: Json = False) -> None:
    """End the current canary step's wait or hold and go on to the next step."""
    _act("promote", project, number, as_json, "promoted")


@app.command()
def abort(project: Project, number: OptionalNumber = None, as_json: Json = False) -> None:
    """Stop a rollout in flight: it fails and all traffic returns to the live revision."""
    _act("abort", project, number, as_json, "aborted")


@app.command()
def history(project: Project,
            limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.", min=1)] = 25,
            as_json: Json = False) -> None:
    """The deployment history, newest first."""
    with api() as client:
        deployments = client.deployments(project, limit=limit)
    if as_json:
        return render.json_print(deployments)
    if not deployments:
        out.print(f"No deployments in {safe(project)} yet.")
        return
    out.print(render.history_table(deployments))


@app.command()
def logs(project: Project, number: Number,
         every: Annotated[bool, typer.Option("--all", help="Every timeline event, not only the build log.")]
         = False,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the rollout ends.")]
         = False,
         as_json: Json = False) -> None:
    """A deployment's build log (with --all: its whole timeline)."""
    kinds = None if every else ("log", "error")
    with api() as client:
        if follow:
            events = _follow(client, project, number, kinds, show=not as_json)
        else:
            events = [e for e in client.deployment(project, number).get("events") or []
                      if kinds is None or e.get("kind") in kinds]
            if not as_json:
                for event in events:
                    _log_print(event, every)
    if as_json:
        render.json_print(events)


def _log_print(event: dict, every: bool) -> None:
    if every:
        out.print(event_line(event))
        return
    for line in str(event.get("message", "")).splitlines() or [""]:
        out.print(Text(safe(line), style="red" if event.get("kind") == "error" else ""))


def _follow(client: Api, project: str, number: int, kinds, *, show: bool, interval: float = 0.5) -> list[dict]:
    cursor, kept = 0, []
    while True:
        state = client.rollout(project, number, after=cursor)
        for event in state.get("events") or []:
            if kinds is None or event.get("kind") in kinds:
                kept.append(event)
                if show:
                    _log_print(event, kinds is None)
        cursor = state.get("last_event_id", cursor)
        if state.get("is_final"):
            return kept
        if len(state.get("events") or []) < 500:
            time.sleep(interval)


def run() -> None:
    """The console script: Click reports usage errors (exit 2) and typer.Exit's code; an API or
    connection error becomes one line on stderr and exit 1."""
    try:
        app(prog_name="switchback")
    except CliError as exc:
        render.error_print(exc.message)
        sys.exit(int(exc.code))


__all__ = ["app", "run", "ApiError"]
