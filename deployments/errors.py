"""The domain's errors: each carries a message a person can act on, never a stack trace.

A caller's mistake or a refusal (ValidationError, NotFound, Conflict, PermissionDenied)
becomes a 4xx answer.  A rollout step raises one of two kinds: TransientError (worth
retrying: a broker blip, an API server 500, a timeout; the engine gives up past the
phase's deadline) or PermanentError (retrying will not help: the deployment fails with
its message).
"""


class SwitchbackError(Exception):
    """Base of every error Switchback raises on purpose."""

    status_code = 400
    default_code = "error"

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.message = message
        # The API's "error" field: a specific code when the raiser gives one, else the kind's.
        self.code = code or self.default_code


class ValidationError(SwitchbackError):
    status_code = 400
    default_code = "invalid"


class NotFound(SwitchbackError):
    status_code = 404
    default_code = "not_found"


class Conflict(SwitchbackError):
    status_code = 409
    default_code = "conflict"


class PermissionDenied(SwitchbackError):
    status_code = 403
    default_code = "forbidden"


class TransientError(SwitchbackError):
    """Retry later: the same call may succeed."""

    status_code = 503
    default_code = "unavailable"


class PermanentError(SwitchbackError):
    """Fail now with a message a person can act on."""

    status_code = 422
    default_code = "failed"
