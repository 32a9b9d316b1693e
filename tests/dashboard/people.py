"""Shared by tests/dashboard and tests/deployments/test_api_*.py: people with roles, a project with history."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Deployment, Membership, Project, Role, State, Trigger


@pytest.fixture
def people(db, django_user_model):
    """One user per role on the 'hello' project, plus a stranger and a staff user."""
    made = {}
    for name in ("viewer", "deployer", "admin", "stranger"):
        made[name] = django_user_model.objects.create_user(name, password="pw-" + name + "-42")
    made["staff"] = django_user_model.objects.create_user("staff", password="pw-staff-42", is_staff=True)
    return made


def history_make(project: Project, count: int, *, live: int | None = None, start=None) -> list[Deployment]:
    """`count` deployments that went live one after another (#1 oldest); `live` is the live one."""
    start = start or timezone.now() - timedelta(hours=count + 1)
    rows = []
    for i in range(1, count + 1):
        at = start + timedelta(hours=i)
        rows.append(Deployment(
            project=project, number=i, commit_sha=hashlib.sha1(f"{project.slug}-{i}".encode()).hexdigest(),
            message=f"change {i}", author="octocat",
            trigger=Trigger.MERGE, requested_by_name="octocat", state=State.SUCCEEDED,
            image=f"{project.slug}:{i}", image_digest=f"sha256:{i:064x}", config=project.runtime_config(),
            started_at=at, built_at=at + timedelta(seconds=20), ready_at=at + timedelta(seconds=30),
            live_at=at + timedelta(seconds=31), finished_at=at + timedelta(seconds=31),
        ))
    created = Deployment.objects.bulk_create(rows)
    Deployment.objects.filter(project=project).update(created_at=start)
    Project.objects.filter(pk=project.pk).update(
        deployment_counter=count, live_deployment=created[(live or count) - 1] if created else None)
    project.refresh_from_db()
    return created


@pytest.fixture
def project(make_project, people, memory_runtime):
    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    for role in ("viewer", "deployer", "admin"):
        Membership.objects.create(project=project, user=people[role], role=getattr(Role, role.upper()))
    return project


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user
