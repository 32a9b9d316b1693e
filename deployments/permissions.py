"""Who may do what: one policy for the pages and the API.

Roles are per project (Membership): viewer reads, deployer also deploys, rolls back,
promotes, aborts and redeploys, admin also changes settings and members.  Staff users
(``user_is_staff``: the one staff rule) hold every role on every project; only staff
create projects and set the fields that choose where and from what a project runs
(``STAFF_ONLY_FIELDS``).

Services trust their caller (the engine and webhooks act as the system); the pages and
the API call `permission_require` before a service, so a refusal changes nothing.
"""

from __future__ import annotations

from .errors import NotFound, PermissionDenied
from .models import Membership, Project, Role

RANK = {Role.VIEWER: 1, Role.DEPLOYER: 2, Role.ADMIN: 3}

# action -> the least role that may do it
ACTIONS = {
    "view": Role.VIEWER,
    "deploy": Role.DEPLOYER,
    "rollback": Role.DEPLOYER,
    "redeploy": Role.DEPLOYER,
    "promote": Role.DEPLOYER,
    "abort": Role.DEPLOYER,
    "settings": Role.ADMIN,
    "members": Role.ADMIN,
    "archive": Role.ADMIN,
}

_VERBS = {
    "view": "see", "deploy": "deploy", "rollback": "roll back", "redeploy": "redeploy",
    "promote": "promote", "abort": "abort rollouts of", "settings": "change the settings of",
    "members": "manage the members of", "archive": "archive (delete)",
}


# Where a project runs and which image it runs are the operator's call: a project's admin
# who could set them would run another project's image or leave the host for a cluster.
STAFF_ONLY_FIELDS = ("runtime", "cluster", "image_template")

_STAFF_ONLY_WHAT = {
    "runtime": "choose where a project runs (its runtime)",
    "cluster": "choose a project's Kubernetes cluster",
    "image_template": "set a project's image template (which prebuilt image it runs)",
}


def user_is_staff(user) -> bool:
    """Platform staff: an active, signed-in user with Django's is_staff or is_superuser."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    )


def project_fields_require(*, user, project: Project | None, fields) -> None:
    """Raise PermissionDenied if a non-staff user would change a staff-only field.

    ``fields`` maps names to the values asked for; a value equal to the current one is no
    change (the dashboard posts every field), so a project's admin saving other settings
    is not refused.  Called before any validation, so a refusal reveals nothing.
    """
    if user_is_staff(user):
        return
    for name in STAFF_ONLY_FIELDS:
        if name not in fields:
            continue
        current = getattr(project, name) if project is not None else Project._meta.get_field(name).get_default()
        if fields[name] != current:
            raise PermissionDenied(f"{name}: only platform staff may {_STAFF_ONLY_WHAT[name]}.",
                                   code="permission_denied")


def role_get(*, user, project: Project) -> str | None:
    """The user's role in the project (staff: admin), None for a stranger.

    Cached on the user object per project, so a page asking several times costs one query.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user_is_staff(user):
        return Role.ADMIN
    cache = user.__dict__.setdefault("_switchback_roles", {})
    if project.pk not in cache:
        cache[project.pk] = (
            Membership.objects.filter(project_id=project.pk, user_id=user.pk).values_list("role", flat=True).first()
        )
    return cache[project.pk]


def permission_has(*, user, project: Project, action: str) -> bool:
    role = role_get(user=user, project=project)
    return role is not None and RANK[role] >= RANK[ACTIONS[action]]


def permission_require(*, user, project: Project, action: str) -> str:
    """Raise unless the user may do `action` on the project; returns their role.

    A stranger learns nothing about the project (404); a member lacking the role gets
    a 403 that says which role is needed.
    """
    role = role_get(user=user, project=project)
    if role is None or (project.archived_at is not None and not user_is_staff(user)):
        # An archived project is gone for its members; staff still read its history and audit.
        raise NotFound(f"No project with slug '{project.slug}'.", code="not_found")
    if project.archived_at is not None and action != "view":
        raise PermissionDenied(f"{project.archived_slug or project.slug} is archived: its history and audit "
                               "are read-only.", code="archived")
    needed = ACTIONS[action]
    if RANK[role] < RANK[needed]:
        raise PermissionDenied(
            f"You are a {role} of {project.slug}; only a {needed} or admin may {_VERBS[action]} it."
            if needed != Role.ADMIN
            else f"You are a {role} of {project.slug}; only an admin may {_VERBS[action]} it.",
            code="permission_denied",
        )
    return role


def project_create_require(*, user) -> None:
    if not user_is_staff(user):
        raise PermissionDenied("Only staff may create projects; ask an administrator.", code="permission_denied")
