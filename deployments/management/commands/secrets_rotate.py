"""Re-encrypt every stored secret with the newest key of SWITCHBACK_ENCRYPTION_KEYS.

Rotation: put the new key first (SWITCHBACK_ENCRYPTION_KEYS=new,old), restart, run this
command, then drop the old key once it reports nothing unreadable.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from deployments.services_secrets import secrets_rotate


class Command(BaseCommand):
    help = ("Re-encrypt webhook secrets, env values, deploy credentials and deployment snapshots with the "
            "newest key of SWITCHBACK_ENCRYPTION_KEYS (the first). Safe to run again.")

    def handle(self, *args, **opts):
        report = secrets_rotate()
        for where in sorted(report.rotated):
            self.stdout.write(f"{where}: {report.rotated[where]} re-encrypted, "
                              f"{report.current.get(where, 0)} already on the newest key")
        if report.unreadable:
            raise CommandError(
                f"{len(report.unreadable)} value(s) open with none of the configured keys (keep the key that "
                f"wrote them in SWITCHBACK_ENCRYPTION_KEYS): {', '.join(report.unreadable[:20])}")
        self.stdout.write(self.style.SUCCESS(
            f"Done: {sum(report.rotated.values())} value(s) re-encrypted with the newest key. "
            "Keys after the first may now be removed from SWITCHBACK_ENCRYPTION_KEYS."))
