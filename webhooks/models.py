"""Every GitHub delivery we accepted, keyed by X-GitHub-Delivery (the idempotency key)."""

from django.db import models


class WebhookDelivery(models.Model):
    class Outcome(models.TextChoices):
        DEPLOYED = "deployed", "Deployment queued"
        MERGED_INTO_EXISTING = "merged", "Same commit as an earlier delivery"
        IGNORED = "ignored", "Ignored"
        PING = "ping", "Ping"

    delivery_id = models.CharField(max_length=100, unique=True)
    event = models.CharField(max_length=50)
    action = models.CharField(max_length=50, blank=True)
    hook_id = models.CharField(max_length=50, blank=True)
    repository = models.CharField(max_length=200, blank=True)
    project = models.ForeignKey(
        "deployments.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    deployment = models.ForeignKey(
        "deployments.Deployment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    commit_sha = models.CharField(max_length=40, blank=True)
    ref = models.CharField(max_length=255, blank=True)
    body_bytes = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
