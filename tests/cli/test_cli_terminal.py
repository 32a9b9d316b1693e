"""`switchback` in a real terminal (a pseudo-terminal): the hidden token prompt, the live view."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Terminal:
    """A child process on a pseudo-terminal; `expect` reads until a text appears."""

    def __init__(self, args, env):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "switchback_cli", *args], cwd=ROOT, env=env,
                                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def _read(self, wait: float) -> str:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return "nothing yet"
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return "closed"
        self.seen += chunk
        return "read" if chunk else "closed"

    def expect(self, text: str, deadline: float = 120) -> None:
        end = time.monotonic() + deadline
        while text.encode() not in self.seen:
            if time.monotonic() > end or self._read(0.5) == "closed":
                raise AssertionError(f"{text!r} never appeared in:\n{self.seen.decode(errors='replace')}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, deadline: float = 120) -> int:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            got = self._read(0.2)
            if got == "closed" or (got == "nothing yet" and self.proc.poll() is not None):
                break
        try:
            return self.proc.wait(timeout=max(1.0, end - time.monotonic()))
        finally:
            self.proc.kill()
            os.close(self.master)

    @property
    def text(self) -> str:
        return ANSI.sub("", self.seen.decode(errors="replace"))


def test_login_asks_for_the_token_without_echoing_it_then_deploy_watch_draws_the_live_view(cli, platform):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBACK_")}
    env.update(SWITCHBACK_CONFIG_DIR=str(cli.config_dir), TERM="xterm-256color", COLUMNS="120", LINES="40")
    env.pop("NO_COLOR", None)

    login = Terminal(["login", platform["url"]], env)
    # Click writes the prompt, then getpass turns echo off (flushing what was typed before)
    # and writes the space: type only then, as a person would.
    login.expect("API token: ")
    login.send(platform["token"] + "\n")
    assert login.finish() == 0, login.text
    assert platform["token"] not in login.text  # typed, never echoed
    assert "Logged in to" in login.text
    assert json.loads((cli.config_dir / "credentials.json").read_text())["token"] == platform["token"]

    deploy = Terminal(["deploy", "hello", "1" * 40, "--watch", "--interval", "0.1"], env)
    code = deploy.finish()
    assert code == 0, deploy.text
    screen = deploy.text
    # The live view's last frame: every phase done, all traffic on the new revision.
    assert "✓ Build" in screen and "✓ Switch" in screen
    assert re.search(r"revision 1 \(new\).*100%", screen)
    assert "hello #1 is live (revision 1)." in screen

    # A rollback in a terminal shows what changes, then asks.
    assert cli("deploy", "hello", "2" * 40, "--watch").returncode == 0
    rollback = Terminal(["rollback", "hello", "1"], env)
    rollback.expect("Roll hello back to #1? [y/N]: ")
    rollback.send("y\n")
    assert rollback.finish() == 0, rollback.text
    assert "back to #1 (revision 1): warm" in rollback.text and "Rollback to #1 is #3 (live)." in rollback.text
