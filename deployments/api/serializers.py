from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from ..models import Deployment, DeploymentEvent, Project


class ProjectSerializer(serializers.ModelSerializer):
    webhook_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=255,
        style={"input_type": "password"},
        help_text="Write-only: the secret set in GitHub's webhook settings.",
    )
    has_webhook_secret = serializers.SerializerMethodField()
    live_deployment = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "name", "slug", "repository", "production_branch", "clone_url", "webhook_secret",
            "has_webhook_secret", *Project.RUNTIME_FIELDS, "live_deployment", "webhook_url",
            "url", "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {"name": {"required": False}}

    def get_has_webhook_secret(self, obj: Project) -> bool:
        return bool(obj.webhook_secret)

    def get_live_deployment(self, obj: Project) -> int | None:
        return obj.live_deployment.number if obj.live_deployment_id else None

    def get_webhook_url(self, obj: Project) -> str:
        from django.conf import settings

        return settings.SWITCHBACK["PUBLIC_URL"].rstrip("/") + reverse("webhooks:github")

    def get_url(self, obj: Project) -> str:
        return reverse("api:project-detail", kwargs={"slug": obj.slug})

    def validate_env(self, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise serializers.ValidationError("Give an object of NAME: value pairs.")
        return value

    def validate_strategy(self, value):
        from ..strategies import strategy_validate

        return strategy_validate(value)


class DeploymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentEvent
        fields = ["id", "created_at", "kind", "message", "data"]


class DeploymentSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug", read_only=True)
    requested_by = serializers.CharField(source="requested_by_name", read_only=True)
    rollback_of = serializers.SerializerMethodField()
    revision = serializers.CharField(read_only=True)
    is_live = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "number", "project", "commit_sha", "message", "author", "trigger", "requested_by",
            "state", "failure_reason", "revision", "image", "image_digest", "rollback_of",
            "is_live", "created_at", "started_at", "built_at", "ready_at", "live_at",
            "finished_at", "retired_at", "duration_seconds", "url",
        ]
        read_only_fields = fields

    def get_rollback_of(self, obj: Deployment) -> int | None:
        return obj.rollback_of.number if obj.rollback_of_id else None

    def get_is_live(self, obj: Deployment) -> bool:
        return obj.project.live_deployment_id == obj.pk

    def get_url(self, obj: Deployment) -> str:
        return reverse("api:deployment-detail", kwargs={"slug": obj.project.slug, "number": obj.number})


class DeploymentDetailSerializer(DeploymentSerializer):
    events = DeploymentEventSerializer(many=True, read_only=True)
    config = serializers.JSONField(read_only=True)

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "config", "events"]
        read_only_fields = fields


class DeploymentRequestSerializer(serializers.Serializer):
    sha = serializers.CharField(max_length=40, help_text="Full 40-character commit sha.")
    message = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
