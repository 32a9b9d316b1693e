"""Build runtime instances (and their host services) from Django settings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from django.conf import settings


def single_host():
    from .single_host import SingleHostRuntime

    return SingleHostRuntime(**settings.SWITCHBACK.get("SINGLE_HOST", {}))


class ProjectOptionsFromDatabase(Mapping):
    """Per-project Kubernetes options (router, host name) read from the Project rows."""

    ROUTERS = {"default": "service", "gateway": "gateway", "nginx": "nginx"}

    def __getitem__(self, slug: str):
        from deployments.models import Project

        from .kubernetes import ProjectOptions

        project = Project.objects.filter(slug=slug).only("router", "slug").first()
        if project is None:
            raise KeyError(slug)
        base_domain = settings.SWITCHBACK.get("BASE_DOMAIN", "localhost")
        return ProjectOptions(router=self.ROUTERS.get(project.router, "service"),
                              hostnames=(f"{slug}.{base_domain}",))

    def __iter__(self) -> Iterator[str]:
        from deployments.models import Project

        return iter(Project.objects.filter(runtime="kubernetes").values_list("slug", flat=True))

    def __len__(self) -> int:
        from deployments.models import Project

        return Project.objects.filter(runtime="kubernetes").count()


def kubernetes():
    from .kubernetes import KubernetesRuntime

    return KubernetesRuntime(projects=ProjectOptionsFromDatabase(), **settings.SWITCHBACK.get("KUBERNETES", {}))


def single_host_services_start(*, supervisor, apps_port: int, env: dict) -> None:
    """Start what the single-host runtime needs beside the platform (filled in below)."""
    return None
