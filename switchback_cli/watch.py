"""Following a rollout: a live view in a terminal, one line per event everywhere else.

It polls GET …/deployments/<n>/rollout/?after=<last event id>, so each poll brings only
what is new.  The exit code says how the rollout ended (errors.Exit).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .client import Api
from .errors import ApiError, CliError, Exit
from .render import safe, seconds

END_CODES = {"succeeded": Exit.OK, "failed": Exit.FAILED, "cancelled": Exit.CANCELLED,
             "superseded": Exit.SUPERSEDED}
# "Step 3/7" (Docker), "STEP 3/7:" (Buildah/Podman), "#5 [3/7]" (BuildKit): how far a build is.
_BUILD_STEP = re.compile(r"(?i)(?:\bstep\s+(\d+)\s*/\s*(\d+))|(?:\[\s*(\d+)\s*/\s*(\d+)\s*\])")
# A poll that cannot reach the platform is retried this long before the watch gives up.
UNREACHABLE_SECONDS = 30.0
_PHASE_MARK = {"done": ("✓", "green"), "current": ("●", "bold blue"), "pending": ("·", "dim"),
               "skipped": ("–", "dim"), "failed": ("✗", "bold red"), "stopped": ("■", "yellow"),
               "not-reached": ("·", "dim")}
_KIND_STYLE = {"phase": "bold", "error": "red", "traffic": "magenta", "gate": "cyan", "probe": "dim",
               "log": "", "info": ""}


@dataclass
class Watched:
    state: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    code: Exit = Exit.OK
    build_step: tuple[int, int] | None = None


def build_step_of(message) -> tuple[int, int] | None:
    """How far a build is, from a builder's log line ("STEP 3/7: ..." and the like)."""
    match = _BUILD_STEP.search(str(message or ""))
    if not match:
        return None
    done, total = (int(g) for g in (match.group(1, 2) if match.group(1) else match.group(3, 4)))
    return (done, total) if 0 < done <= total else None


def _short_time(value) -> str:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return "--:--:--"


def event_line(event: dict) -> Text:
    kind = str(event.get("kind", ""))
    line = Text(f"{_short_time(event.get('created_at'))} ", style="dim")
    line.append(f"{safe(kind):<7} ", style=_KIND_STYLE.get(kind, "") or "dim")
    line.append(safe(event.get("message")), style=_KIND_STYLE.get(kind, ""))
    return line


def hold_hint(slug: str, state: dict) -> str:
    steps, step = state.get("steps") or [], state.get("waiting_step")
    where = f"step {step + 1}/{len(steps)} ({steps[step]['weight']}%)" if step is not None and step < len(steps) \
        else "the project's pin"
    number = state.get("number")
    return (f"Held at {where}: `switchback promote {slug} {number}` goes on, "
            f"`switchback abort {slug} {number}` returns all traffic to the live revision.")


def _phases(state: dict) -> Text:
    line = Text()
    for phase in state.get("phases") or []:
        mark, style = _PHASE_MARK.get(phase.get("status"), ("?", ""))
        line.append(f"{mark} {safe(phase.get('label'))}", style=style)
        if phase.get("duration") is not None:
            line.append(f" {seconds(phase['duration'])}", style="dim")
        elif phase.get("note"):
            line.append(f" ({safe(phase['note'])})", style="dim")
        line.append("   ")
    return line


def _traffic(state: dict) -> Table:
    table = Table.grid(padding=(0, 1))
    revision = state.get("revision")
    for rev, weight in sorted((state.get("weights") or {}).items(), key=lambda kv: kv[0] != revision):
        label = Text(f"revision {safe(rev)}" + (" (new)" if rev == revision else ""))
        table.add_row(label, ProgressBar(total=100, completed=int(weight), width=30), Text(f"{int(weight)}%"))
    return table


def _steps(state: dict, now: datetime) -> Text:
    steps = state.get("steps") or []
    if not steps:
        return Text("")
    line = Text("steps: ")
    current = state.get("step", 0)
    for i, step in enumerate(steps):
        style = "bold reverse" if i == current and state.get("state") == "switching" else ""
        line.append(f"{step['weight']}%", style=style)
        line.append(" → ")
    line.append("100%")
    if state.get("holding"):
        line.append("   held until promoted", style="bold yellow")
    elif state.get("step_until"):
        until = datetime.fromisoformat(str(state["step_until"]).replace("Z", "+00:00"))
        line.append(f"   next step in {max(0, int((until - now).total_seconds()))}s", style="dim")
    return line


def view(slug: str, watched: Watched, started: float, clock: Callable[[], float]) -> Group:
    """What the terminal shows under the scrolling events."""
    state = watched.state
    title = Text(f"{safe(slug)} #{state.get('number')}", style="bold")
    title.append(f"  revision {safe(state.get('revision'))}  ")
    title.append(safe(state.get("state")), style="bold")
    title.append(f"  {seconds(clock() - started)}", style="dim")
    parts = [title, _phases(state)]
    if state.get("state") in ("queued", "building"):
        if watched.build_step:
            done, total = watched.build_step
            parts.append(Group(Text(f"build step {done}/{total}"), ProgressBar(total=total, completed=done, width=40)))
        else:  # no step count in the log yet: a pulse, not a made-up percentage
            parts.append(ProgressBar(total=None, width=40, pulse=True))
    if state.get("weights"):
        parts.append(_traffic(state))
    steps = _steps(state, datetime.now(UTC))
    if steps:
        parts.append(steps)
    if state.get("holding"):
        parts.append(Text(hold_hint(slug, state), style="yellow"))
    return Group(*parts)


def rollout_watch(api: Api, slug: str, number: int, *, console: Console, interval: float = 0.5,
                  timeout: float | None = None, quiet: bool = False, live: bool | None = None,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Watched:
    """Poll until the rollout ends (or `timeout` passes); print as it goes unless `quiet`."""
    watched = Watched()
    cursor, started, unreachable_since, hinted = 0, clock(), None, None
    live = console.is_terminal if live is None else live
    screen = Live(console=console, refresh_per_second=8, transient=False) if live and not quiet else None
    if screen is not None:
        screen.start()
    try:
        while True:
            try:
                state = api.rollout(slug, number, after=cursor)
                unreachable_since = None
            except ApiError:
                raise
            except CliError as exc:  # unreachable: the platform may be restarting
                unreachable_since = unreachable_since or clock()
                if clock() - unreachable_since > UNREACHABLE_SECONDS:
                    raise
                if not quiet:
                    console.print(Text(f"{exc.message}; retrying", style="yellow"))
                sleep(interval)
                continue
            new = state.get("events") or []
            watched.events += new
            cursor = state.get("last_event_id", cursor)
            watched.state = state
            for event in new:
                if event.get("kind") == "log":
                    watched.build_step = build_step_of(event.get("message")) or watched.build_step
                if not quiet:
                    console.print(event_line(event))
            hold_key = (state.get("waiting_step"), state.get("step")) if state.get("holding") else None
            if hold_key and hold_key != hinted and not quiet and screen is None:
                console.print(Text(hold_hint(slug, state), style="yellow"))
            hinted = hold_key
            if screen is not None:
                screen.update(view(slug, watched, started, clock), refresh=True)
            if state.get("is_final"):
                watched.code = END_CODES.get(state.get("state"), Exit.ERROR)
                return watched
            if len(new) >= 500:
                continue  # more events are waiting: ask again at once
            if timeout is not None and clock() - started >= timeout:
                watched.code = Exit.TIMEOUT
                return watched
            sleep(interval)
    except KeyboardInterrupt:
        raise CliError(f"Stopped watching; the rollout goes on (`switchback watch {slug} {number}`).",
                       Exit.INTERRUPTED) from None
    finally:
        if screen is not None:
            screen.stop()
