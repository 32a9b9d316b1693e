"""Build runtime instances (and their host services) from Django settings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from .single_host import SingleHostRuntime
    from .single_host.engine_api import EngineHandle


def single_host():
    from deployments.installation import installation_id

    from .single_host import SingleHostRuntime

    return SingleHostRuntime(**settings.SWITCHBACK.get("SINGLE_HOST", {}), instance=installation_id())


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


@dataclass
class SingleHostServices:
    """What `manage.py up` runs beside the platform for the single-host runtime."""

    engine: EngineHandle
    runtime: SingleHostRuntime
    summary: str

    def router_ensure(self) -> bool:
        """Start HAProxy again if it stopped answering; True when it had to."""
        if self.runtime.router.api.alive():
            return False
        self.runtime.router.ensure_running()
        return True

    def close(self) -> None:
        """Stop the container engine's API service if we started it: never HAProxy nor the
        apps, which serve on without the platform (`manage.py apps_stop` stops them)."""
        self.engine.stop()


def single_host_services_start(*, progress=None) -> SingleHostServices:
    """The container engine's API service (Podman) when nothing answers at the configured
    URL, and our HAProxy, adopted if it already runs (it outlives `up`).

    ``progress(step, seconds, detail)``, when given, hears of each step as it completes.
    """
    import time

    from .single_host.base_image import ensure_base_image
    from .single_host.engine_api import connect

    def done(step: str, since: float, detail: str) -> None:
        if progress is not None:
            progress(step, time.monotonic() - since, detail)

    config = settings.SWITCHBACK["SINGLE_HOST"]
    began = time.monotonic()
    # A shared engine busy with other installations' builds may take a while to answer.
    engine = connect(config["engine_url"], start_service=True, wait_seconds=90)
    ensure_base_image(engine.client)
    done("container engine", began, engine.url)
    began = time.monotonic()
    runtime = single_host()
    adopted = runtime.router.pid() is not None and runtime.router.api.alive()
    runtime.router.ensure_running()
    haproxy = "adopted the running HAProxy" if adopted else "started HAProxy"
    done("HAProxy", began, f"{'adopted, ' if adopted else ''}apps on {config['haproxy_bind']}")
    return SingleHostServices(engine=engine, runtime=runtime,
                              summary=f"container engine at {engine.url}; {haproxy} on {config['haproxy_bind']}")


def single_host_apps_stop() -> list[str]:
    """Stop this instance's apps: remove its app containers and stop its HAProxy.

    Only on request (`manage.py apps_stop`): stopping the platform never stops an app.  The
    next `manage.py up` starts the live revisions again from the database.
    """
    from .single_host.containers import list_replicas, remove_container
    from .single_host.engine_api import connect

    # The engine's API service may have stopped with `up`: start it for this, and stop it.
    engine = connect(settings.SWITCHBACK["SINGLE_HOST"]["engine_url"], start_service=True)
    runtime = single_host()
    done = []
    try:
        for container in list_replicas(engine.client, instance=runtime.instance):
            remove_container(container, stop_timeout=runtime.stop_timeout)
            done.append(f"removed container {container.name}")
        if runtime.router.pid() is not None:
            runtime.router.stop()
            done.append("stopped HAProxy")
    finally:
        engine.stop()
    return done
