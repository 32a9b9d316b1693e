"""Reads: querysets shaped for the API and the pages, with a constant number of queries."""

from __future__ import annotations

from django.db.models import QuerySet

from .errors import NotFound
from .models import Deployment, Project


def project_list() -> QuerySet[Project]:
    return Project.objects.select_related("live_deployment", "live_deployment__source").order_by("name")


def project_get(*, slug: str) -> Project:
    project = project_list().filter(slug=slug).first()
    if project is None:
        raise NotFound(f"No project with slug '{slug}'.")
    return project


def deployment_list(*, project: Project) -> QuerySet[Deployment]:
    return (
        Deployment.objects.filter(project=project)
        .select_related("project", "requested_by", "rollback_of", "source")
        .order_by("-number")
    )


def deployment_get(*, project: Project, number: int) -> Deployment:
    deployment = deployment_list(project=project).filter(number=number).first()
    if deployment is None:
        raise NotFound(f"Deployment #{number} does not exist in {project.slug}.")
    return deployment


def deployment_in_flight(*, project: Project) -> Deployment | None:
    from .models import ACTIVE_STATES

    return deployment_list(project=project).filter(state__in=ACTIVE_STATES).first()
