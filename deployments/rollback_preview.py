"""What a rollback changes, compared with the live deployment: the image, the env variable
names added, removed or changed (never a value), and the replicas, probes and strategy
that differ.  Shown by the confirm dialog and `?preview` on the rollback API."""

from __future__ import annotations

from dataclasses import dataclass, field

from .envvars import config_env
from .errors import NotFound
from .models import Deployment, Project
from .rollback_targets import RollbackTarget, rollback_targets_list

# Settings a person reviews before a rollback (labels as the settings page names them).
COMPARED = (
    ("replicas", "Replicas"),
    ("port", "Port"),
    ("startup_probe_path", "Startup probe"),
    ("readiness_probe_path", "Readiness probe"),
    ("liveness_probe_path", "Liveness probe"),
    ("probe_period_seconds", "Probe period (s)"),
    ("probe_timeout_seconds", "Probe timeout (s)"),
    ("probe_failure_threshold", "Probe failure threshold"),
    ("probe_success_threshold", "Probe success threshold"),
    ("probe_initial_delay_seconds", "Probe initial delay (s)"),
    ("ready_timeout_seconds", "Ready timeout (s)"),
    ("strategy", "Strategy"),
    ("gates", "Metric gates"),
)


@dataclass(frozen=True)
class SettingChange:
    name: str
    label: str
    live: object
    target: object


@dataclass(frozen=True)
class RollbackPreview:
    number: int
    revision: str
    image_live: str
    image_target: str
    env_added: list[str] = field(default_factory=list)
    env_removed: list[str] = field(default_factory=list)
    env_changed: list[str] = field(default_factory=list)
    settings: list[SettingChange] = field(default_factory=list)
    target: RollbackTarget | None = None  # its state: warm, cold or unavailable (reason)

    @property
    def image_changes(self) -> bool:
        return self.image_live != self.image_target


def _config(deployment: Deployment | None) -> dict:
    return dict(deployment.config or {}) if deployment is not None else {}


def rollback_preview(*, project: Project, number: int) -> RollbackPreview:
    target = (Deployment.objects.filter(project=project, number=number).select_related("source").first())
    if target is None:
        raise NotFound(f"Deployment #{number} does not exist in {project.slug}.")
    live_id = Project.objects.filter(pk=project.pk).values_list("live_deployment_id", flat=True).first()
    live = Deployment.objects.filter(pk=live_id).first() if live_id else None
    live_config, target_config = _config(live), _config(target)
    live_env, target_env = config_env(live_config), config_env(target_config)
    settings = [
        SettingChange(name=name, label=label, live=live_config.get(name), target=target_config.get(name))
        for name, label in COMPARED
        if live is not None and (live_config.get(name) or None) != (target_config.get(name) or None)
    ]
    state = next((t for t in rollback_targets_list(project=project, revisions={target.revision})
                  if t.revision == target.revision), None)
    return RollbackPreview(
        number=target.number, revision=target.revision,
        image_live=live.image if live is not None else "", image_target=target.image,
        env_added=sorted(set(target_env) - set(live_env)),
        env_removed=sorted(set(live_env) - set(target_env)),
        # Compared in memory only: the preview carries names, never a value.
        env_changed=sorted(n for n in set(live_env) & set(target_env) if live_env[n] != target_env[n]),
        settings=settings, target=state,
    )
