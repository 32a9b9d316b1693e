"""Build runtime instances (and their host services) from Django settings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from django.conf import settings


def single_host():
    from .single_host import SingleHostRuntime

    return SingleHostRuntime(**settings.SWITCHBACK.get("SINGLE_HOST", {}))


class ProjectOptionsFromDatabase(Mapping):
    """Per-project Kubernetes options (router, host name) read from the Project rows of
    one cluster ("" for the platform's own)."""

    ROUTERS = {"default": "service", "gateway": "gateway", "nginx": "nginx"}

    def __init__(self, cluster: str = ""):
        self.cluster = cluster

    def _projects(self):
        from deployments.models import Project

        return Project.objects.filter(runtime="kubernetes", cluster=self.cluster)

    def __getitem__(self, slug: str):
        from deployments.models import Project

        from .kubernetes import ProjectOptions

        project = Project.objects.filter(slug=slug).only("router", "slug").first()
        if project is None:
            raise KeyError(slug)
        config = settings.SWITCHBACK
        base_domain = config.get("BASE_DOMAIN", "localhost")
        gateway_namespace, _, gateway_name = config.get("KUBE_GATEWAY", "switchback/switchback").rpartition("/")
        return ProjectOptions(
            router=self.ROUTERS.get(project.router, "service"),
            hostnames=(f"{slug}.{base_domain}",),
            parent_refs=({"name": gateway_name, "namespace": gateway_namespace or "switchback"},),
            ingress_class=config.get("KUBE_INGRESS_CLASS", "nginx"),
            canary_header=config.get("KUBE_CANARY_HEADER", ""),
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._projects().values_list("slug", flat=True))

    def __len__(self) -> int:
        return self._projects().count()


CONNECTION_KEYS = ("kubeconfig", "context", "in_cluster", "host")


def kubernetes_options(cluster: str = "") -> dict:
    """The KubernetesRuntime's options: the platform's KUBE_* settings, with the connection
    of the named cluster (from KUBE_CLUSTERS) instead of the platform's own, and its
    namespace if it names one (KUBE_NAMESPACE otherwise)."""
    from deployments.errors import PermanentError

    options = dict(settings.SWITCHBACK.get("KUBERNETES", {}))
    if cluster:
        clusters = settings.SWITCHBACK.get("KUBE_CLUSTERS", {})
        if cluster not in clusters:
            raise PermanentError(f"No Kubernetes cluster named '{cluster}' is registered here "
                                 f"(KUBE_CLUSTERS has: {', '.join(sorted(clusters)) or 'none'}).")
        for key in CONNECTION_KEYS:
            options.pop(key, None)
        options.update(clusters[cluster])
    return options


def kubernetes(cluster: str = ""):
    from .kubernetes import KubernetesRuntime

    return KubernetesRuntime(projects=ProjectOptionsFromDatabase(cluster), **kubernetes_options(cluster))


def single_host_services_start(*, stack) -> str:
    """Start what the single-host runtime needs beside the platform; returns a summary.

    The container engine's API service (Podman) when nothing answers at the configured
    URL, and our HAProxy.  Both are stopped when `stack` (an ExitStack) closes.
    """
    from .single_host.base_image import ensure_base_image
    from .single_host.engine_api import connect

    config = settings.SWITCHBACK["SINGLE_HOST"]
    engine = connect(config["engine_url"], start_service=True)
    stack.callback(engine.stop)
    ensure_base_image(engine.client)
    runtime = single_host()
    runtime.router.ensure_running()
    stack.callback(runtime.router.stop)
    # Closed first (LIFO): the apps stop while the engine still answers.  The next start's
    # reconciler starts the live revisions again from PostgreSQL.
    stack.callback(_stop_app_containers, engine.client)
    return f"container engine at {engine.url}; HAProxy on {config['haproxy_bind']}"


def _stop_app_containers(client) -> None:
    """Stop this instance's apps: only containers of projects in this database (a rootful
    engine shows every instance's containers to every service on the host)."""
    from deployments.models import Project

    from .single_host.containers import LABEL_MANAGED, LABEL_PROJECT

    ours = set(Project.objects.filter(runtime="single-host").values_list("slug", flat=True))
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=1"}):
        if container.labels.get(LABEL_PROJECT) not in ours:
            continue
        try:
            container.stop(timeout=5)
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - best effort on the way out; the reconciler converges later
            pass
