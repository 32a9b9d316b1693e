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
