"""Error pages: JSON under /api/ and /webhooks/, a readable page everywhere else."""

from django.http import JsonResponse
from django.shortcuts import render


def _wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": "not_found", "message": f"Nothing at {request.path}."}, status=404)
    return render(request, "error.html", {"title": "Not found",
                                          "message": "There is nothing at this address."}, status=404)


def server_error(request):
    if _wants_json(request):
        return JsonResponse({"error": "server_error",
                             "message": "Switchback hit an internal error; it has been logged."},
                            status=500)
    return render(request, "error.html", {"title": "Something went wrong",
                                          "message": "Switchback hit an internal error; it has been logged."},
                  status=500)
