from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .services import delivery_receive


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse({"error": "too_large", "message": f"The body is over the {limit}-byte limit."}, status=413)


@csrf_exempt
def github_webhook(request, hook_id: str | None = None):
    """/webhooks/github/<hook_id>/ (one project) and the shared /webhooks/github/."""
    if request.method != "POST":
        response = JsonResponse(
            {"error": "method_not_allowed",
             "message": "Send GitHub webhook deliveries with POST."}, status=405)
        response["Allow"] = "POST"
        return response
    limit = settings.SWITCHBACK["WEBHOOK_MAX_BODY_BYTES"]
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large(limit)
    answer = delivery_receive(headers=request.headers, body=body,
                              content_type=request.content_type or "", hook_id=hook_id)
    return JsonResponse(answer.body, status=answer.status)
