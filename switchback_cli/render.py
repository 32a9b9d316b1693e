"""Output: Rich tables for people, JSON for scripts, and every server string made inert.

Commit messages, failure reasons and build log lines come from project admins and their
repositories: they are printed as plain text (never Rich markup) with control characters
replaced, so a log line cannot move the cursor, retitle the terminal or fake output.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# C0 controls but tab, DEL, C1 controls (ESC [ ... is how an escape sequence starts), and
# the bidirectional overrides that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(value) -> str:
    """A server string as inert text: control characters shown as `\\xNN`, one line."""
    if value is None:
        return ""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", str(value))


def text(value, style: str = "") -> Text:
    return Text(safe(value), style=style)


def first_line(value, width: int = 60) -> str:
    line = (str(value or "").strip().splitlines() or [""])[0]
    return safe(line if len(line) <= width else line[: width - 1] + "…")


def when(value) -> str:
    """An ISO time from the API, as local `YYYY-MM-DD HH:MM:SS`."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return safe(value)


def seconds(value) -> str:
    if value is None:
        return ""
    value = float(value)
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def json_print(data) -> None:
    """JSON on stdout, nothing else: `switchback ... --json | jq`."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def error_print(message: str) -> None:
    """One line on stderr: the API's own message."""
    err.print(Text("Error: ", style="bold red") + Text(" ".join(safe(message).split())))


STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "superseded": "yellow",
               "queued": "cyan", "building": "blue", "starting": "blue", "verifying": "blue",
               "switching": "magenta"}


def state_text(state: str, *, live: bool = False) -> Text:
    label = "live" if live else safe(state)
    return Text(label, style="bold green" if live else STATE_STYLE.get(state, ""))


def projects_table(projects: list[dict]) -> Table:
    table = Table(title=None, box=None, header_style="bold", pad_edge=False)
    for column in ("PROJECT", "NAME", "LIVE", "RUNTIME", "STRATEGY", "PINNED"):
        table.add_column(column)
    for p in projects:
        steps = (p.get("strategy") or {}).get("steps") or []
        strategy = " → ".join(f"{s.get('weight')}%" for s in steps) + " → 100%" if steps else "switch"
        live = p.get("live_deployment")
        table.add_row(text(p.get("slug")), text(p.get("name")), f"#{live}" if live else "-",
                      text(p.get("runtime")), safe(strategy), "yes" if p.get("pinned_at") else "")
    return table


def history_table(deployments: list[dict]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "STATE", "COMMIT", "MESSAGE", "TRIGGER", "BY", "CREATED", "TOOK"):
        table.add_column(column, no_wrap=column != "MESSAGE", overflow="ellipsis")
    for d in deployments:
        message = first_line(d.get("message"), 50)
        if d.get("rollback_of"):
            message = f"rollback to #{d['rollback_of']}" + (f": {message}" if message else "")
        table.add_row(str(d.get("number")), state_text(d.get("state", ""), live=bool(d.get("is_live"))),
                      safe((d.get("commit_sha") or "")[:7]), Text(message), text(d.get("trigger")),
                      text(d.get("requested_by")), when(d.get("created_at")), seconds(d.get("duration_seconds")))
    return table


def targets_table(targets: list[dict]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "REVISION", "COMMIT", "ROLLBACK", "WENT LIVE", "MESSAGE / NOTE"):
        table.add_column(column, no_wrap=column != "MESSAGE / NOTE")
    style = {"warm": "green", "cold": "cyan", "unavailable": "red"}
    for t in targets:
        note = first_line(t.get("message"), 50)
        if t.get("state") == "unavailable":
            note = first_line(f"{t.get('reason', '')} {t.get('remedy', '')}", 80)
        table.add_row(str(t.get("number")), text(t.get("revision")), safe((t.get("commit_sha") or "")[:7]),
                      Text(safe(t.get("state")), style=style.get(t.get("state"), "")), when(t.get("live_at")),
                      Text(note))
    return table
