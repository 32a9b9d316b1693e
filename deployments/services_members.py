"""Writes about people: project members and their roles, personal API tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from .errors import Conflict, NotFound, ValidationError
from .models import Membership, Project, Role
from .services import audit_record


def _user_by_name(username: str):
    if "\x00" in (username or ""):  # PostgreSQL refuses NUL in a query; no username has one
        raise ValidationError("A username cannot contain a NUL character.", code="invalid")
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise NotFound(f"No user named '{username}'. They must log in or be created first.", code="not_found")
    return user


def _would_orphan(project: Project, membership: Membership) -> bool:
    """True when this is the last admin membership of the project."""
    if membership.role != Role.ADMIN:
        return False
    return not project.memberships.filter(role=Role.ADMIN).exclude(pk=membership.pk).exists()


def membership_set(*, project: Project, username: str, role: str, actor) -> Membership:
    """Add a member, or change their role."""
    if role not in Role.values:
        raise ValidationError(f"role: choose one of {', '.join(Role.values)}.", code="invalid")
    user = _user_by_name(username)
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        membership = Membership.objects.filter(project=project, user=user).first()
        if membership is None:
            membership = Membership.objects.create(project=project, user=user, role=role)
            audit_record(actor=actor, action="member.add", project=project,
                         summary=f"added {user.username} as {role}",
                         data={"user": user.username, "to": role})
        elif membership.role != role:
            if role != Role.ADMIN and _would_orphan(project, membership):
                raise Conflict(f"{user.username} is the last admin of {project.slug}; "
                               "make someone else admin first.", code="last_admin")
            old = membership.role
            membership.role = role
            membership.save(update_fields=["role"])
            audit_record(actor=actor, action="member.role", project=project,
                         summary=f"{user.username}: {old} -> {role}",
                         data={"user": user.username, "from": old, "to": role})
    return membership


def membership_remove(*, project: Project, username: str, actor) -> None:
    user = _user_by_name(username)
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        membership = Membership.objects.filter(project=project, user=user).first()
        if membership is None:
            raise NotFound(f"{user.username} is not a member of {project.slug}.", code="not_found")
        if _would_orphan(project, membership):
            raise Conflict(f"{user.username} is the last admin of {project.slug}; "
                           "make someone else admin first.", code="last_admin")
        membership.delete()
        audit_record(actor=actor, action="member.remove", project=project,
                     summary=f"removed {user.username} ({membership.role})",
                     data={"user": user.username, "from": membership.role})


def token_regenerate(*, user) -> str:
    """Replace the user's API token and return the new one, the only time it is readable.

    The old token stops working at once.  Tokens are stored as SHA-512 digests
    (django-rest-knox), so a lost token is replaced, never shown again.
    """
    from knox.models import AuthToken

    with transaction.atomic():
        AuthToken.objects.filter(user=user).delete()
        _instance, token = AuthToken.objects.create(user=user, expiry=None)
        audit_record(actor=user, action="token.regenerate", summary=f"{user.username} regenerated their API token")
    return token
