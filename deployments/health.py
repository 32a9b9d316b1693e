"""`/healthz` (the process answers) and `/readyz` (database and broker reachable)."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def _broker_ok() -> tuple[bool, str]:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return False, f"unreachable ({exc.__class__.__name__})"


def readyz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"unreachable ({exc.__class__.__name__})"
    broker_ok, checks["broker"] = _broker_ok()
    ready = checks["database"] == "ok" and broker_ok
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status=200 if ready else 503)
