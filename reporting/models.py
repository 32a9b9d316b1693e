"""What Switchback tells the outside world, and how to reach it.

`Report` is the outbox: one row per HTTP request to send (a GitHub deployment, a status,
a commit status, a notification), written after the rollout's transaction committed and
sent by a Celery task with retries.  Rows are never deleted by sending, so a worker that
dies mid-send leaves a row that the sweep picks up again.
"""

from __future__ import annotations

from django.db import models

from deployments.crypto import EncryptedTextField


class GitHubConnection(models.Model):
    """How one project reports to GitHub (absent or disabled: it does not)."""

    class Auth(models.TextChoices):
        PLATFORM = "platform", "Platform token (GITHUB_TOKEN)"
        TOKEN = "token", "This project's token"
        APP = "app", "GitHub App installation (GITHUB_APP_ID + private key)"

    project = models.OneToOneField("deployments.Project", on_delete=models.CASCADE, related_name="github")
    enabled = models.BooleanField(default=True)
    auth = models.CharField(max_length=20, choices=Auth.choices, default=Auth.PLATFORM)
    token = EncryptedTextField(blank=True)  # write-only; a fine-grained or classic token
    installation_id = models.BigIntegerField(null=True, blank=True,
                                             help_text="Found through the App when blank.")
    environment = models.CharField(max_length=255, default="production")
    commit_status = models.BooleanField(default=False, help_text="Also set switchback/deploy on the commit.")
    hook_id = models.BigIntegerField(null=True, blank=True, help_text="Found by Connect when blank.")
    # The last permanent error (bad token, missing permission): shown until a send succeeds.
    problem = models.TextField(blank=True)
    problem_fix = models.TextField(blank=True)
    problem_at = models.DateTimeField(null=True, blank=True)
    deliveries_checked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"GitHub reporting for {self.project_id}"


class InstallationToken(models.Model):
    """A GitHub App installation token, cached until shortly before it expires."""

    installation_id = models.BigIntegerField(unique=True)
    token = EncryptedTextField()
    expires_at = models.DateTimeField()


class GitHubDeployment(models.Model):
    """The GitHub deployment that mirrors a Switchback deployment."""

    deployment = models.OneToOneField("deployments.Deployment", on_delete=models.CASCADE,
                                      related_name="github_deployment")
    github_id = models.BigIntegerField()
    environment = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)


class NotificationDestination(models.Model):
    class Kind(models.TextChoices):
        SLACK = "slack", "Slack-compatible incoming webhook"
        WEBHOOK = "webhook", "JSON webhook signed with HMAC-SHA256"

    project = models.ForeignKey("deployments.Project", on_delete=models.CASCADE,
                                related_name="notification_destinations")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    url = EncryptedTextField()  # incoming-webhook URLs are credentials: write-only
    secret = EncryptedTextField(blank=True)  # HMAC key of the JSON webhook
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Report(models.Model):
    class Kind(models.TextChoices):
        GITHUB_DEPLOYMENT = "github.deployment", "GitHub deployment"
        GITHUB_STATUS = "github.status", "GitHub deployment status"
        GITHUB_COMMIT_STATUS = "github.commit_status", "GitHub commit status"
        NOTIFICATION = "notification", "Notification"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (permanent)"
        SKIPPED = "skipped", "Skipped"

    project = models.ForeignKey("deployments.Project", on_delete=models.CASCADE, related_name="reports")
    # Null: a GitHub report.  Rows of one stream (the project's GitHub reports, or one
    # destination) are sent in id order: a status never overtakes its deployment.
    destination = models.ForeignKey(NotificationDestination, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="reports")
    deployment = models.ForeignKey("deployments.Deployment", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="reports")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)  # a sender's lease
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], condition=models.Q(state="pending"),
                         name="report_due"),
            models.Index(fields=["project", "destination", "id"]),
            models.Index(fields=["created_at"]),
        ]


class RedeliveryRequest(models.Model):
    """A failed GitHub delivery attempt Switchback asked to have redelivered (once per attempt;
    a redelivery that fails too is a new attempt, asked again up to a limit per delivery)."""

    project = models.ForeignKey("deployments.Project", on_delete=models.CASCADE, related_name="redeliveries")
    guid = models.CharField(max_length=100, db_index=True)  # X-GitHub-Delivery
    github_delivery_id = models.BigIntegerField(unique=True)
    event = models.CharField(max_length=50, blank=True)
    status_code = models.IntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=200, blank=True)
