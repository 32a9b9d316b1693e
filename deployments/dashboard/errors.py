"""Error pages: JSON under /api/ and /webhooks/, a readable page everywhere else.

These answer whatever DEBUG says (it is never on outside the tests): a request that
crashes, is too large or matches no URL never shows a stack trace or the settings.
"""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.shortcuts import render


def _wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def _answer(request, status: int, code: str, title: str, message: str):
    if _wants_json(request):
        return JsonResponse({"error": code, "message": message}, status=status)
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        # Django raises it while reading a body over DATA_UPLOAD_MAX_MEMORY_SIZE.
        return _answer(request, 413, "too_large", "Request too large", "The request body is too large.")
    return _answer(request, 400, "bad_request", "Bad request", "The request could not be understood.")


def permission_denied(request, exception=None):
    return _answer(request, 403, "permission_denied", "Forbidden", "You may not do this.")


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": "not_found", "message": f"Nothing at {request.path}."}, status=404)
    return render(request, "error.html", {"title": "Not found",
                                          "message": "There is nothing at this address."}, status=404)


def server_error(request):
    return _answer(request, 500, "server_error", "Something went wrong",
                   "Switchback hit an internal error; it has been logged.")


def login_locked_out(request, response=None, credentials=None):
    """django-axes' answer once a username+address has failed too often (429)."""
    from django.conf import settings

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (f"Too many failed logins for this account from your address; try again in {minutes} "
               "minutes, or ask an administrator to reset it.")
    if _wants_json(request) or "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"error": "too_many_attempts", "message": message}, status=429)
    return render(request, "error.html", {"title": "Too many failed logins", "message": message}, status=429)
