"""`python manage.py apps_stop`: stop this installation's apps (the data plane).

Stopping the platform (`up`) never stops an app; this does, on request: it removes this
installation's app containers (and no other installation's) and stops its HAProxy.  The
history stays in the database; the next `manage.py up` starts the live revisions again.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from deployments.runtimes.factories import single_host_apps_stop


class Command(BaseCommand):
    help = "Stop this installation's apps: its app containers and its HAProxy (the platform stops with `up`)."

    def handle(self, *args, **opts):
        done = single_host_apps_stop()
        for line in done:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("Apps stopped." if done else "No app was running."))
