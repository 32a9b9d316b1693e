from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from ..models import AuditEntry, Deployment, DeploymentEvent, Membership, Project, Role


class ProjectSerializer(serializers.ModelSerializer):
    webhook_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=255,
        style={"input_type": "password"},
        help_text="Write-only: the secret set in GitHub's webhook settings.",
    )
    has_webhook_secret = serializers.SerializerMethodField()
    git_token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500, trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Write-only: an HTTPS access token for a private repository (sent as an Authorization "
        "header, never put in the URL); blank removes it.",
    )
    has_git_token = serializers.SerializerMethodField()
    deploy_key_public = serializers.CharField(
        read_only=True, help_text="The public half of the project's SSH deploy key (POST …/deploy-key/ makes one).")
    deploy_key_fingerprint = serializers.SerializerMethodField()
    env = serializers.JSONField(
        write_only=True, required=False,
        help_text="Write-only: environment variables and secrets as {NAME: value}; replaces all of them. "
        "Values are never returned (see env_names).",
    )
    env_names = serializers.SerializerMethodField()
    live_deployment = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "name", "slug", "repository", "production_branch", "clone_url", "webhook_secret",
            "has_webhook_secret", "git_token", "has_git_token", "deploy_key_public", "deploy_key_fingerprint",
            *Project.RUNTIME_FIELDS, *Project.ROUTING_FIELDS, "deploy_window", "env_names", "live_deployment",
            "webhook_url",
            "url", "created_at", "pinned_at", "pinned_by_name", "pinned_reason",
        ]
        read_only_fields = ["created_at", "pinned_at", "pinned_by_name", "pinned_reason"]
        extra_kwargs = {"name": {"required": False}}

    def get_has_webhook_secret(self, obj: Project) -> bool:
        return bool(obj.webhook_secret)

    def get_has_git_token(self, obj: Project) -> bool:
        return bool(obj.git_token)

    def get_deploy_key_fingerprint(self, obj: Project) -> str:
        from ..services_credentials import deploy_key_fingerprint

        return deploy_key_fingerprint(obj.deploy_key_public)

    def get_env_names(self, obj: Project) -> list[str]:
        return sorted(obj.env or {})

    def get_live_deployment(self, obj: Project) -> int | None:
        return obj.live_deployment.number if obj.live_deployment_id else None

    def get_webhook_url(self, obj: Project) -> str | None:
        """The project's own payload URL, for its admins (and staff); null for other roles."""
        from ..permissions import permission_has
        from ..selectors import webhook_url_get

        request = self.context.get("request")
        if request is None or not permission_has(user=request.user, project=obj, action="settings"):
            return None
        return webhook_url_get(project=obj, request=request)

    def get_url(self, obj: Project) -> str:
        return reverse("api:project-detail", kwargs={"slug": obj.slug})

    def validate_env(self, value):
        from ..envvars import env_validate
        from ..errors import ValidationError

        try:
            return env_validate(value)
        except ValidationError as exc:  # the domain's error, as this field's error
            raise serializers.ValidationError(exc.message) from exc

    def validate_deploy_window(self, value):
        from ..errors import ValidationError
        from ..windows import window_validate

        try:
            return window_validate(value)
        except ValidationError as exc:  # the domain's error, as this field's error
            raise serializers.ValidationError(exc.message) from exc

    def validate_gates(self, value):
        from ..errors import ValidationError
        from ..gates.rules import gates_validate

        try:
            return gates_validate(value)
        except ValidationError as exc:  # the domain's error, as this field's error
            raise serializers.ValidationError(exc.message) from exc

    def validate_strategy(self, value):
        from ..errors import ValidationError
        from ..strategies import strategy_validate

        try:
            return strategy_validate(value)
        except ValidationError as exc:  # the domain's error, as this field's error
            raise serializers.ValidationError(exc.message) from exc


class DeployKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(source="deploy_key_public", read_only=True,
                                       help_text="Add it to the repository as a read-only deploy key.")
    fingerprint = serializers.SerializerMethodField()

    def get_fingerprint(self, obj: Project) -> str:
        from ..services_credentials import deploy_key_fingerprint

        return deploy_key_fingerprint(obj.deploy_key_public)


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
    schedule = serializers.SerializerMethodField(
        help_text="Scheduled switch: local_time and tz as given, at (UTC; null: held, the project's time "
        "had passed), fired_at, changed_by; null when not scheduled.")
    waiting = serializers.SerializerMethodField(
        help_text="Why the rollout waits and until when: kind (schedule, window, pin, step), until (UTC, "
        "null: until a person acts), message; null when it is not waiting.")

    class Meta:
        model = Deployment
        fields = [
            "number", "project", "commit_sha", "message", "author", "trigger", "requested_by",
            "state", "failure_reason", "revision", "image", "image_digest", "rollback_of",
            "is_live", "created_at", "started_at", "built_at", "ready_at", "live_at",
            "finished_at", "retired_at", "duration_seconds", "url", "schedule", "waiting",
        ]
        read_only_fields = fields

    # A finished deployment waits for nothing, and the history page stays one query: its
    # schedule is read only for open deployments here (the detail shows it always).
    schedule_of_finished = False

    def get_schedule(self, obj: Deployment) -> dict | None:
        from ..selectors import deployment_schedule_get

        if obj.is_final and not self.schedule_of_finished:
            return None
        schedule = deployment_schedule_get(deployment=obj)
        if schedule is None:
            return None
        return {**schedule, **{k: schedule[k].isoformat() if schedule[k] else None for k in ("at", "fired_at")}}

    def get_waiting(self, obj: Deployment) -> dict | None:
        from ..selectors import deployment_waiting_get

        if obj.is_final:
            return None
        waiting = deployment_waiting_get(deployment=obj)
        if waiting is None:
            return None
        return {"kind": waiting.kind, "until": waiting.until.isoformat() if waiting.until else None,
                "message": waiting.message}

    def get_rollback_of(self, obj: Deployment) -> int | None:
        return obj.rollback_of.number if obj.rollback_of_id else None

    def get_is_live(self, obj: Deployment) -> bool:
        return obj.project.live_deployment_id == obj.pk

    def get_url(self, obj: Deployment) -> str:
        return reverse("api:deployment-detail", kwargs={"slug": obj.project.slug, "number": obj.number})


class DeploymentDetailSerializer(DeploymentSerializer):
    schedule_of_finished = True
    events = DeploymentEventSerializer(many=True, read_only=True)
    config = serializers.SerializerMethodField(
        help_text="The settings it ran with; environment values are masked (they may be secrets).")

    def get_config(self, obj: Deployment) -> dict:
        from ..envvars import config_redact

        return config_redact(obj.config)

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "config", "events"]
        read_only_fields = fields


class DeploymentRequestSerializer(serializers.Serializer):
    sha = serializers.CharField(max_length=40, help_text="Full 40-character commit sha.")
    message = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = ["created_at"]


class MembershipRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)
    project = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["id", "created_at", "actor", "project", "action", "summary", "data"]
        read_only_fields = fields

    def get_project(self, obj: AuditEntry) -> str | None:
        return obj.project.slug if obj.project_id else None


class MetricsQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=3650, default=30, required=False)


class MetricsDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    deploys = serializers.IntegerField()
    rollbacks = serializers.IntegerField()
    failures = serializers.IntegerField()
    lead_median = serializers.FloatField(allow_null=True)


class MetricsIncidentSerializer(serializers.Serializer):
    project = serializers.CharField()
    number = serializers.IntegerField()
    live_at = serializers.DateTimeField()
    restored_at = serializers.DateTimeField(allow_null=True)
    restored_by = serializers.IntegerField(allow_null=True)
    seconds = serializers.FloatField(allow_null=True)


class MetricsSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    changes = serializers.IntegerField(help_text="Changes that went live (rollbacks excluded).")
    rollbacks = serializers.IntegerField()
    deploys_per_day = serializers.FloatField(help_text="Deployment frequency.")
    lead_time_median = serializers.FloatField(allow_null=True, help_text="Seconds, merge to live.")
    lead_time_p90 = serializers.FloatField(allow_null=True)
    change_failure_rate = serializers.FloatField(allow_null=True, help_text="0..1")
    failures = serializers.IntegerField()
    time_to_restore_median = serializers.FloatField(allow_null=True, help_text="Seconds.")
    incidents = MetricsIncidentSerializer(many=True)
    daily = MetricsDaySerializer(many=True)
    notes = serializers.DictField(child=serializers.CharField())


class RollbackTargetSerializer(serializers.Serializer):
    """An earlier successful revision and what a rollback to it takes now."""

    number = serializers.IntegerField(help_text="The deployment to name in POST .../deployments/<number>/rollback/.")
    revision = serializers.CharField()
    commit_sha = serializers.CharField()
    message = serializers.CharField()
    image = serializers.CharField()
    live_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=["warm", "cold", "unavailable"],
                                    help_text="warm: weights only; cold: start, probe, switch; unavailable: see "
                                    "reason.")
    reason = serializers.CharField()
    remedy = serializers.CharField(help_text="What to do instead when unavailable.")


class SettingChangeSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    live = serializers.JSONField()
    target = serializers.JSONField()


class RollbackPreviewSerializer(serializers.Serializer):
    """What a rollback would change compared with the live deployment (env: names only)."""

    number = serializers.IntegerField()
    revision = serializers.CharField()
    image_live = serializers.CharField()
    image_target = serializers.CharField()
    env_added = serializers.ListField(child=serializers.CharField())
    env_removed = serializers.ListField(child=serializers.CharField())
    env_changed = serializers.ListField(child=serializers.CharField())
    settings = SettingChangeSerializer(many=True)
    target = RollbackTargetSerializer(allow_null=True)


class RollbackRequestSerializer(serializers.Serializer):
    pin = serializers.BooleanField(
        required=False, default=False,
        help_text="Pin the project: later merges are built and warmed but do not switch until unpinned or promoted.")


class PromoteRequestSerializer(serializers.Serializer):
    full = serializers.BooleanField(
        required=False, default=False,
        help_text="Skip every remaining canary step and switch all traffic (default: only the current step).")


class ScheduleRequestSerializer(serializers.Serializer):
    at = serializers.CharField(max_length=19, help_text='Local date and time, e.g. "2026-12-03T14:00".')
    tz = serializers.CharField(max_length=64, required=False, default="UTC",
                               help_text='IANA time zone, e.g. "Europe/Berlin" (default UTC).')


class WindowOverrideRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why it deploys outside the window (audited).")
