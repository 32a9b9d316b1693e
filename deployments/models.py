"""Projects and their append-only deployment history.

A Deployment is never rewritten into another one and never deleted by the platform:
a rollback is a new Deployment that reuses an earlier one's image and config.
"""

from __future__ import annotations

import math
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from .crypto import EncryptedJSONField, EncryptedTextField, encrypt_json
from .route_names import canary_cookie_validator, canary_header_validator, canary_value_validator
from .sources import branch_validator, clone_url_validator, dockerfile_validator, git_token_validator

SLUG_RE = r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"
REPOSITORY_RE = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")


def webhook_id_new() -> str:
    """A project's webhook URL id: 192 random bits, so no one finds a hook by trying."""
    return secrets.token_urlsafe(24)


class Runtime(models.TextChoices):
    SINGLE_HOST = "single-host", "Single host (containers behind HAProxy)"
    KUBERNETES = "kubernetes", "Kubernetes"


class Router(models.TextChoices):
    DEFAULT = "default", "Runtime default (HAProxy on a single host, Service selector on Kubernetes)"
    GATEWAY = "gateway", "Gateway API HTTPRoute"
    NGINX = "nginx", "ingress-nginx canary annotations"


class Project(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(
        max_length=40,
        unique=True,
        validators=[
            RegexValidator(
                SLUG_RE,
                "Use 1-40 lowercase letters, digits and hyphens, starting with a letter "
                "(it becomes a host name label).",
            )
        ],
    )
    repository = models.CharField(
        max_length=200,
        db_index=True,
        blank=True,
        validators=[RegexValidator(REPOSITORY_RE, 'Write the repository as "owner/name".')],
        help_text='The GitHub repository as GitHub names it: "owner/name" (may be left empty when the clone '
                  "URL is a file:// folder).",
    )
    production_branch = models.CharField(max_length=255, default="main", validators=[branch_validator])
    clone_url = models.CharField(
        max_length=500, blank=True, validators=[clone_url_validator],
        help_text="https://, ssh:// or git@host:owner/repo.git (no credentials in it: use the deploy key "
        "or token); defaults to the GitHub HTTPS URL.",
    )
    # Deploy credentials for a private repository: write-only, encrypted at rest.
    git_token = EncryptedTextField(
        blank=True, validators=[git_token_validator],
        help_text="Write-only: an HTTPS access token, sent as an Authorization header.",
    )
    deploy_key_private = EncryptedTextField(blank=True, editable=False)
    deploy_key_public = models.TextField(blank=True, editable=False)
    # Secrets at rest: encrypted with SWITCHBACK_ENCRYPTION_KEYS (deployments/crypto.py).
    webhook_secret = EncryptedTextField(blank=True, validators=[MaxLengthValidator(255)])
    # The project's own webhook URL is /webhooks/github/<webhook_id>/ (webhooks/urls.py).
    webhook_id = models.CharField(max_length=64, unique=True, default=webhook_id_new, editable=False)

    # --- how it runs ---------------------------------------------------------------------
    runtime = models.CharField(max_length=20, choices=Runtime.choices, default=Runtime.SINGLE_HOST,
                               help_text="Staff only: where the project's revisions run.")
    router = models.CharField(max_length=20, choices=Router.choices, default=Router.DEFAULT)
    cluster = models.CharField(
        max_length=63,
        blank=True,
        help_text="Staff only. Kubernetes only: one of the clusters the platform's operator registered "
        "(KUBE_CLUSTERS); blank for the platform's own cluster.",
    )
    image_template = models.CharField(
        max_length=300,
        blank=True,
        help_text="Staff only. Deploy prebuilt images instead of building, e.g. registry.example.com/app:{sha}; "
        "only images the operator allows (SWITCHBACK_ALLOWED_IMAGE_TEMPLATES) or the project's own.",
    )
    dockerfile = models.CharField(
        max_length=200, default="Dockerfile", validators=[dockerfile_validator],
        help_text="The build file's path inside the repository (no '..', no absolute path).",
    )
    port = models.PositiveIntegerField(
        default=8000, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    replicas = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    # Names and values in one ciphertext; the API and pages show the names only.
    env = EncryptedJSONField(default=dict, blank=True)
    # Limits of each replica (a container's cgroup on one host, resources.limits on
    # Kubernetes); the operator caps them with SWITCHBACK_MAX_MEMORY_MB / SWITCHBACK_MAX_CPUS.
    memory_mb = models.PositiveIntegerField(
        default=512, validators=[MinValueValidator(32), MaxValueValidator(1024 * 1024)],
        help_text="Memory limit of each replica in MiB; a replica that needs more is killed (out of memory).",
    )
    cpus = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.05), MaxValueValidator(256)],
        help_text="CPU limit of each replica, in cores (0.5 = half a core).",
    )

    startup_probe_path = models.CharField(max_length=200, default="/healthz")
    readiness_probe_path = models.CharField(max_length=200, default="/readyz")
    liveness_probe_path = models.CharField(max_length=200, default="/healthz")
    probe_period_seconds = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.1), MaxValueValidator(300)]
    )
    probe_timeout_seconds = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.1), MaxValueValidator(60)]
    )
    probe_failure_threshold = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    probe_success_threshold = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    probe_initial_delay_seconds = models.FloatField(
        default=0.0, validators=[MinValueValidator(0), MaxValueValidator(3600)]
    )
    ready_timeout_seconds = models.PositiveIntegerField(
        default=120,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="A revision not ready within this deadline fails; traffic never moves.",
    )
    drain_seconds = models.FloatField(
        default=10.0,
        validators=[MinValueValidator(0), MaxValueValidator(3600)],
        help_text="How long requests in flight may finish on a retired revision.",
    )
    keep_warm_seconds = models.PositiveIntegerField(
        # 30 s, as Argo Rollouts' scaleDownDelaySeconds: long enough for endpoints and
        # connections to settle, short enough not to run two revisions for long.
        default=30,
        help_text="After a switch the previous revision keeps running this long (a rollback to it "
        "is instant), then it is retired (stopped on one host, scaled to zero on Kubernetes); a later "
        "rollback starts it again from its image.",
    )
    keep_previous_warm = models.BooleanField(
        default=False,
        help_text="Keep the previous live revision running at 1 replica until the next switch (after the "
        "keep-warm window), so a rollback to it is instant all day; costs one replica.",
    )
    watch_seconds = models.PositiveIntegerField(
        default=30,
        help_text="After a switch, a revision failing liveness within this window is rolled back.",
    )
    keep_images = models.PositiveIntegerField(
        default=10,
        validators=[MaxValueValidator(200)],
        help_text="Rollback targets kept besides the live revision: the images of this many revisions that went "
        "live before it are never pruned, and they stay stopped (one host) or scaled to zero (Kubernetes).",
    )
    strategy = models.JSONField(
        default=dict,
        blank=True,
        help_text='Promotion strategy, e.g. {"steps": [{"weight": 10, "wait": 60}, ...]}; '
        "empty means switch all at once when ready.",
    )
    deploy_window = models.JSONField(
        default=dict,
        blank=True,
        help_text='When merges may take traffic, e.g. {"tz": "Europe/Berlin", "days": ["mon", "tue"], '
        '"from": "09:00", "to": "16:00", "freeze": [{"from": "2026-12-20", "to": "2027-01-04"}]}; '
        "empty means always. Outside it a merge is built and warmed, then waits. Rollbacks never wait.",
    )

    # --- routing beyond weights (deployments/routing.py) ---------------------------------
    sticky_canary = models.BooleanField(
        default=False,
        help_text="Sticky canary: a client stays on the revision it was first sent to while the weights hold, "
        "and the share of clients (not of requests) follows the weights.",
    )
    canary_header = models.CharField(
        max_length=63, blank=True, validators=[canary_header_validator],
        help_text="A request header, e.g. X-Canary, that sends a request to the revision being rolled out "
        "whatever the weights (with the value below); empty: off.",
    )
    canary_header_value = models.CharField(
        max_length=63, default="always", validators=[canary_value_validator],
        help_text="The header's value that routes to the new revision (letters, digits, . _ ~ -).",
    )
    canary_cookie = models.CharField(
        max_length=63, blank=True, validators=[canary_cookie_validator],
        help_text="A cookie name: set to \"always\", it sends a request to the revision being rolled out; "
        "empty: off.",
    )

    gates = models.JSONField(
        default=dict,
        blank=True,
        help_text='Metric gates that roll a canary back by themselves, e.g. {"error_rate": true, "latency": true} '
        "(the defaults: error rate over 2% or 5x the stable's; latency over 2x the stable's); empty means none.",
    )

    # Pinned (a rollback can pin): merges are still recorded, built and warmed, but do not
    # take the traffic until someone unpins the project or promotes the deployment.
    pinned_at = models.DateTimeField(null=True, blank=True, editable=False)
    pinned_by_name = models.CharField(max_length=200, blank=True, editable=False)
    pinned_reason = models.CharField(max_length=300, blank=True, editable=False)

    live_deployment = models.ForeignKey(
        "Deployment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deployment_counter = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Archived ("deleted"): its revisions, routes and images are gone, its history and audit
    # stay readable to staff, and its slug is free again (the row's slug becomes
    # "archived-<id>"; archived_slug keeps the name it had).
    archived_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    archived_by_name = models.CharField(max_length=200, blank=True, editable=False)
    archived_slug = models.CharField(max_length=40, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def __str__(self) -> str:
        return self.slug

    @property
    def effective_clone_url(self) -> str:
        return self.clone_url or f"https://github.com/{self.repository}.git"

    RUNTIME_FIELDS = (
        "runtime",
        "cluster",
        "router",
        "image_template",
        "dockerfile",
        "port",
        "replicas",
        "env",
        "memory_mb",
        "cpus",
        "startup_probe_path",
        "readiness_probe_path",
        "liveness_probe_path",
        "probe_period_seconds",
        "probe_timeout_seconds",
        "probe_failure_threshold",
        "probe_success_threshold",
        "probe_initial_delay_seconds",
        "ready_timeout_seconds",
        "drain_seconds",
        "keep_warm_seconds",
        "keep_previous_warm",
        "watch_seconds",
        "keep_images",
        "strategy",
        "gates",
    )

    ROUTING_FIELDS = ("sticky_canary", "canary_header", "canary_header_value", "canary_cookie")

    def clean(self) -> None:
        super().clean()
        self._clean_limits()
        if self.archived_at is None and (self.slug or "").startswith("archived-"):
            raise ValidationError({"slug": 'Slugs starting with "archived-" name archived projects; choose another.'})
        if not self.repository and not (self.clone_url or "").startswith("file://"):
            raise ValidationError({"repository": 'Give the GitHub repository as "owner/name" (only a project '
                                                 "whose clone URL is a file:// folder may leave it empty)."})
        if not self.cluster:
            return
        if self.runtime != Runtime.KUBERNETES:
            raise ValidationError({"cluster": "A cluster applies to the kubernetes runtime only; "
                                              "leave it blank for this runtime."})
        registered = sorted(settings.SWITCHBACK.get("KUBE_CLUSTERS", {}))
        if self.cluster not in registered:
            raise ValidationError({"cluster": f"No cluster named '{self.cluster}' is registered here "
                                              f"(registered: {', '.join(registered) or 'none'}); "
                                              "leave it blank for the platform's own cluster."})

    def _clean_limits(self) -> None:
        max_memory = settings.SWITCHBACK.get("MAX_MEMORY_MB", 4096)
        max_cpus = settings.SWITCHBACK.get("MAX_CPUS", 4.0)
        if self.memory_mb is not None and self.memory_mb > max_memory:
            raise ValidationError({"memory_mb": f"At most {max_memory} MiB per replica on this platform "
                                                "(SWITCHBACK_MAX_MEMORY_MB)."})
        if self.cpus is not None and not math.isfinite(self.cpus):
            raise ValidationError({"cpus": "Give a number of CPUs, such as 0.5 or 2."})
        if self.cpus is not None and self.cpus > max_cpus:
            raise ValidationError({"cpus": f"At most {max_cpus:g} CPUs per replica on this platform "
                                           "(SWITCHBACK_MAX_CPUS)."})

    def runtime_config(self) -> dict:
        """The settings a revision runs with, snapshotted into each deployment.

        The env goes in as one ciphertext (read it with envvars.config_env): a rollback
        gets back exactly the env its deployment ran with, and the snapshot holds no plain value.
        """
        config = {name: getattr(self, name) for name in self.RUNTIME_FIELDS}
        config["env"] = encrypt_json(config["env"] or {})
        return config


class Trigger(models.TextChoices):
    MERGE = "merge", "Merged pull request"
    PUSH = "push", "Push"
    API = "api", "API"
    ROLLBACK = "rollback", "Rollback"
    REDEPLOY = "redeploy", "Redeploy"


class State(models.TextChoices):
    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    STARTING = "starting", "Starting"
    VERIFYING = "verifying", "Verifying"
    SWITCHING = "switching", "Switching"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (State.BUILDING, State.STARTING, State.VERIFYING, State.SWITCHING)
FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.SUPERSEDED, State.CANCELLED)


class Deployment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="deployments")
    number = models.PositiveIntegerField()
    commit_sha = models.CharField(max_length=40)
    message = models.TextField(blank=True)
    author = models.CharField(max_length=200, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    failure_reason = models.TextField(blank=True)

    image = models.CharField(max_length=500, blank=True)
    image_digest = models.CharField(max_length=200, blank=True)
    config = models.JSONField(default=dict)
    progress = models.JSONField(
        default=dict, blank=True, help_text="The engine's bookkeeping: deadlines, step, weights."
    )
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks"
    )
    source = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reuses",
        help_text="The deployment whose image and config this one reuses (rollback, redeploy).",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    # The outbox mark: when a worker is next expected to act on this deployment (set when
    # a step is handed to the broker, pushed forward by heartbeats).  Empty, or long past
    # while the deployment is not final -> the sweep hands it out again.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Only the task carrying the latest token acts: a re-enqueue retires older chains.
    step_token = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    live_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="deployment_number_per_project"),
            # A commit deploys once from webhooks (a merge's pull_request and push deliveries),
            # unless that deployment failed: then a new delivery of the commit (a re-run)
            # deploys it again.  Superseded and cancelled ones still count: a late delivery
            # must not bring back a commit that a newer merge or a rollback replaced.
            models.UniqueConstraint(
                fields=["project", "commit_sha"],
                condition=Q(trigger__in=["merge", "push"]) & ~Q(state="failed"),
                name="one_webhook_deployment_per_sha_unless_failed",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "-number"]),
            models.Index(fields=["project", "commit_sha"]),
            models.Index(fields=["state"], condition=~Q(state__in=FINAL_STATES), name="deployment_open"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}#{self.number}"

    @property
    def short_sha(self) -> str:
        return self.commit_sha[:7]

    @property
    def revision(self) -> str:
        """The runtime's revision id: the deployment that first ran this image.

        A rollback runs its target's revision again (warm: it is still running).
        """
        return str(self.source.number if self.source_id else self.number)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def went_live(self) -> bool:
        return self.live_at is not None and self.state == State.SUCCEEDED

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class DeploymentEvent(models.Model):
    class Kind(models.TextChoices):
        PHASE = "phase", "Phase"
        LOG = "log", "Log"
        PROBE = "probe", "Probe"
        TRAFFIC = "traffic", "Traffic"
        GATE = "gate", "Gate"
        ERROR = "error", "Error"
        INFO = "info", "Info"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INFO)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["deployment", "id"])]


class DeploymentSchedule(models.Model):
    """When a scheduled deployment switches: a wall time in a zone, and the UTC instant it
    names.  Kept in PostgreSQL (the engine reads it at every step), so it survives
    restarts; changed, brought forward (promote) or cancelled (abort) until it fires."""

    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, related_name="schedule")
    local_time = models.CharField(max_length=19, help_text="The wall time as given, e.g. 2026-12-03T14:00.")
    tz = models.CharField(max_length=64, help_text="The IANA time zone of local_time.")
    # The instant; null: the project's scheduled time had passed when this deployment was
    # made: it holds until someone sets a time or promotes it.
    at = models.DateTimeField(null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    changed_by_name = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["at"], condition=Q(fired_at__isnull=True), name="schedule_pending")]

    def __str__(self) -> str:
        return f"{self.deployment} at {self.local_time} {self.tz}"


class AuditEntry(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=200, blank=True)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    action = models.CharField(max_length=50)
    summary = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer (read)"
    DEPLOYER = "deployer", "Deployer (deploy, rollback, promote, abort)"
    ADMIN = "admin", "Admin (settings, members)"


class Membership(models.Model):
    """A person's role in one project.  Staff users see and do everything without one."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_once_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class Installation(models.Model):
    """This installation of Switchback: one row, made on first use and never changed.

    Its ``instance_id`` names and labels everything the installation creates on a shared
    container engine (containers, HAProxy backends), so that two installations on one host
    never list, retire or stop each other's apps.
    """

    instance_id = models.CharField(max_length=16, unique=True,
                                   validators=[RegexValidator(r"^[a-z0-9]{1,16}$")])
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.instance_id
