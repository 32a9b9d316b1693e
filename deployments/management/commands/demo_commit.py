"""`manage.py demo_commit`: a new commit in the demo's repository (var/demo/hello), deployed.

For trying canaries and rollbacks again after `up --demo`; the platform must be running
(`up`) for the deployment to go anywhere.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deployments.demo import demo_commit_deploy, demo_repo_path
from deployments.errors import SwitchbackError


class Command(BaseCommand):
    help = "Commit a small change to the demo app's repository (var/demo/hello) and deploy it."

    def add_arguments(self, parser):
        parser.add_argument("-m", "--message", default="Another change to the sample app",
                            help="the commit message")

    def handle(self, *args, **opts):
        # The demo builds from its local folder: allow it as a file:// root, as `up --demo` does.
        root = str(demo_repo_path().parent)
        if root not in settings.SWITCHBACK["ALLOWED_SOURCE_ROOTS"]:
            settings.SWITCHBACK["ALLOWED_SOURCE_ROOTS"] = [*settings.SWITCHBACK["ALLOWED_SOURCE_ROOTS"], root]
        try:
            deployment = demo_commit_deploy(message=opts["message"])
        except SwitchbackError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Committed {deployment.commit_sha[:7]} in {demo_repo_path()} and queued "
                          f"{deployment.project.slug} #{deployment.number}; `up` shows it go live.")
