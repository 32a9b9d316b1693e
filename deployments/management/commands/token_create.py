"""Make a user's API token (replacing the one they had) and print it: the only time it is shown."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from deployments.services_members import token_regenerate


class Command(BaseCommand):
    help = ("Make a new API token for a user and print it once (only its hash is kept); "
            "the user's previous token stops working.")

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **opts):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'.")
        # The token alone on stdout, so scripts can capture it: TOKEN=$(manage.py token_create admin)
        self.stdout.write(token_regenerate(user=user))
