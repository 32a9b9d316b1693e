#!/usr/bin/env bash
# Switchback's platform image runs as one of four roles (plus the probes' checks):
#
#   web      migrate, then gunicorn serving config.wsgi on 0.0.0.0:${PORT:-8000}
#   worker   celery -A config worker   (runs rollouts: talks to the runtimes)
#   switch-worker  celery -A config worker -Q switch   (rollbacks only: never behind a build)
#   beat     celery -A config beat     (outbox sweep and reconciler schedule)
#   migrate  apply database migrations and exit (safe to run from several pods at once)
#   check    check worker|switch-worker|beat: liveness/readiness checks for the Celery processes
#
# Anything else is run as a command (e.g. `entrypoint.sh python manage.py createsuperuser`).
# Every long-running role is exec'd so it is PID 1 and receives SIGTERM itself:
# gunicorn and Celery both shut down gracefully on it.
set -euo pipefail

cd "${SWITCHBACK_HOME:-/app}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.production}"
BEAT_SCHEDULE="${CELERY_BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}"

migrate() {
    # Several web pods can start together; a PostgreSQL advisory lock lets one migrate
    # while the others wait, then find nothing left to do.
    python - <<'PY'
import django

django.setup()
from django.core.management import call_command
from django.db import connection

LOCK = 0x53574243  # "SWBC": any constant shared by every Switchback process
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK])
    try:
        call_command("migrate", interactive=False)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK])
else:
    call_command("migrate", interactive=False)
PY
}

check() {
    case "${1:-}" in
        worker)
            # Answers only if this worker's consumer loop is alive and reading its broker.
            exec celery -A config inspect ping --destination "worker@${HOSTNAME}" --timeout "${CHECK_TIMEOUT:-10}"
            ;;
        switch-worker)
            exec celery -A config inspect ping --destination "switch@${HOSTNAME}" --timeout "${CHECK_TIMEOUT:-10}"
            ;;
        beat)
            # Beat rewrites its schedule file at least every 3 minutes
            # (celery.beat.Scheduler.sync_every) and after every task it sends (every 10 s
            # here), whether the broker took the task or not; a file older than
            # BEAT_MAX_AGE seconds means the scheduler loop is stuck.
            exec python - "$BEAT_SCHEDULE" "${BEAT_MAX_AGE:-600}" <<'PY'
import glob
import os
import sys
import time

files = glob.glob(glob.escape(sys.argv[1]) + "*")  # shelve may add .db/.dat/.dir
if not files:
    sys.exit(f"no beat schedule file at {sys.argv[1]}")
age = time.time() - max(os.path.getmtime(f) for f in files)
if age > float(sys.argv[2]):
    sys.exit(f"beat schedule not written for {age:.0f}s")
PY
            ;;
        *)
            echo "usage: entrypoint.sh check worker|switch-worker|beat" >&2
            exit 64
            ;;
    esac
}

role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
    web)
        migrate
        exec gunicorn --config python:config.gunicorn config.wsgi:application \
            --bind "0.0.0.0:${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-2}" \
            --timeout "${GUNICORN_TIMEOUT:-30}" \
            --worker-tmp-dir "${TMPDIR:-/tmp}" \
            --access-logfile - \
            "$@"
        ;;
    worker)
        exec celery -A config worker --hostname "worker@${HOSTNAME}" \
            --loglevel "${LOG_LEVEL:-INFO}" --concurrency "${WORKER_CONCURRENCY:-2}" "$@"
        ;;
    switch-worker)
        # The "switch" queue alone (rollbacks): with every slot of the main workers busy
        # verifying rollouts, a rollback still starts at once.
        exec celery -A config worker --queues switch --hostname "switch@${HOSTNAME}" \
            --loglevel "${LOG_LEVEL:-INFO}" --concurrency "${SWITCH_WORKER_CONCURRENCY:-2}" "$@"
        ;;
    beat)
        exec celery -A config beat --loglevel "${LOG_LEVEL:-INFO}" \
            --schedule "$BEAT_SCHEDULE" --pidfile= "$@"
        ;;
    migrate)
        migrate
        ;;
    check)
        check "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
