"""What ends a command, and the exit codes scripts can rely on."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1  # the API refused (its message is printed), cannot reach it, not logged in
    USAGE = 2  # a wrong option or argument (Click's own code)
    FAILED = 3  # the watched deployment failed (or was aborted)
    CANCELLED = 4  # ... was cancelled
    SUPERSEDED = 5  # ... was replaced by a newer one before going live
    TIMEOUT = 6  # --timeout passed before the rollout ended
    INTERRUPTED = 130  # Ctrl-C while watching (the rollout itself goes on)


class CliError(Exception):
    """A one-line message for the person at the terminal, and the exit code."""

    def __init__(self, message: str, code: Exit = Exit.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiError(CliError):
    """The API answered with an error: its own message, and the HTTP status."""

    def __init__(self, message: str, *, status: int, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error
