"""The CLI's pieces that need no platform: inert text, URLs and tokens, the credentials file,
the console script's declaration."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from importlib import import_module

import pytest
from rich.console import Console

from switchback_cli import config
from switchback_cli.errors import CliError
from switchback_cli.render import first_line, safe
from switchback_cli.watch import Watched, build_step_of, view

from .conftest import ROOT


@pytest.mark.parametrize("hostile, shown", [
    ("\x1b]0;pwned\x07title", "\\x1b]0;pwned\\x07title"),  # retitle the terminal
    ("\x1b[2J\x1b[Hfake prompt $", "\\x1b[2J\\x1b[Hfake prompt $"),  # clear the screen
    ("\x9b31mred", "\\x9b31mred"),  # the 8-bit CSI
    ("ok\rFAILED", "ok\\x0dFAILED"),  # overwrite the line
    ("evil\u202eexe.txt", "evil\\u202eexe.txt"),  # right-to-left override
    ("[bold]not markup[/bold]\ttab", "[bold]not markup[/bold]\ttab"),
])
def test_server_text_is_printed_inert(hostile, shown):
    assert safe(hostile) == shown
    assert first_line(hostile + "\nsecond line") == safe(hostile.splitlines()[0])  # \r ends a line too


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/", "http://", "https://user:pw@host",
                                 "https://host/?q=1", "javascript:alert(1)", "host:8000"])
def test_login_refuses_what_is_not_a_plain_http_url(url):
    with pytest.raises(CliError):
        config.url_normalize(url)


def test_urls_lose_the_trailing_slash_and_keep_a_prefix():
    assert config.url_normalize(" https://sb.example.com/ ") == "https://sb.example.com"
    assert config.url_normalize("http://127.0.0.1:8000/switchback/") == "http://127.0.0.1:8000/switchback"


@pytest.mark.parametrize("token", ["", "   ", "sb_a b", "sb_\x1b[2J", "x" * 501])
def test_a_token_with_spaces_or_controls_is_refused(token):
    with pytest.raises(CliError):
        config.token_check(token)


def test_credentials_are_private_whatever_the_umask(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBACK_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("SWITCHBACK_URL", raising=False)
    monkeypatch.delenv("SWITCHBACK_TOKEN", raising=False)
    previous = os.umask(0)
    try:
        path = config.credentials_save(url="https://sb.example.com", token="sb_abc")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary file left
    assert config.credentials_load() == config.Credentials(url="https://sb.example.com", token="sb_abc")
    monkeypatch.setenv("SWITCHBACK_URL", "https://other.example.com")
    monkeypatch.setenv("SWITCHBACK_TOKEN", "sb_env")
    assert config.credentials_load() == config.Credentials(url="https://other.example.com", token="sb_env")
    monkeypatch.delenv("SWITCHBACK_TOKEN")
    path.write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(CliError, match="Not logged in"):
        config.credentials_load()


def test_the_console_script_is_declared_and_its_package_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, name = project["project"]["scripts"]["switchback"].partition(":")
    assert callable(getattr(import_module(module), name))
    assert "switchback_cli" in project["tool"]["setuptools"]["packages"]
    dependencies = " ".join(project["project"]["dependencies"])
    assert all(lib in dependencies for lib in ("typer", "rich", "httpx", "platformdirs"))


@pytest.mark.parametrize("line, step", [
    ("STEP 3/7: RUN pip install -r requirements.txt", (3, 7)),  # Podman / Buildah
    ("Step 1/5 : FROM scratch", (1, 5)),  # Docker's classic builder
    ("#6 [2/4] COPY . /app", (2, 4)),  # BuildKit
    ("copied 9/3 files", None), ("nothing to see", None), ("STEP 0/3", None), ("STEP 4/3", None),
])
def test_build_progress_comes_from_the_builders_step_lines(line, step):
    assert build_step_of(line) == step


def test_the_live_view_shows_build_progress_the_split_and_the_hold():
    console = Console(record=True, width=120, force_terminal=True, color_system=None)
    state = {"number": 3, "revision": "3", "state": "building", "phases": [
        {"key": "build", "label": "Build", "status": "current", "duration": None, "note": ""},
        {"key": "start", "label": "Start", "status": "pending", "duration": None, "note": ""}],
        "weights": {}, "steps": [], "holding": False}
    console.print(view("hello", Watched(state=state, build_step=(3, 7)), 0.0, lambda: 12.0))
    building = console.export_text()
    assert "hello #3" in building and "● Build" in building and "build step 3/7" in building and "12.0s" in building

    state.update(state="switching", weights={"3": 10, "2": 90}, steps=[{"weight": 10, "wait": None}], step=0,
                 waiting_step=0, holding=True)
    console.print(view("hello", Watched(state=state), 0.0, lambda: 1.0))
    held = console.export_text()
    assert "revision 3 (new)" in held and "10%" in held and "revision 2" in held and "90%" in held
    assert "held until promoted" in held and "switchback promote hello 3" in held


def test_the_platform_image_copies_every_installed_package_before_pip_install():
    """`pip install .` fails when a package pyproject names is not there yet (checked
    statically: no base image can be pulled on these machines)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = [line.strip() for line in (ROOT / "platform" / "Containerfile").read_text().splitlines()]
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install ."))
    copied = " ".join(line for line in lines[:install] if line.startswith("COPY"))
    for package in project["tool"]["setuptools"]["packages"]:
        assert f"COPY {package}/ {package}/" in copied, package
