"""A local fake of the GitHub REST API over HTTP (see server.py)."""

from .server import FakeGitHub, Recorded

__all__ = ["FakeGitHub", "Recorded"]
