"""Issue 9: `manage.py up` shows the admin password once, when it makes the admin, never at every start."""

from __future__ import annotations

import stat

import pytest

from deployments.management.commands.up import Command

pytestmark = pytest.mark.django_db


def test_the_admin_password_is_shown_when_made_then_only_where_it_is_kept(tmp_path, django_user_model):
    first = Command()._ensure_admin(tmp_path)
    kept = tmp_path / "admin-password"
    password = kept.read_text().strip()
    assert password in first and str(kept) in first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert django_user_model.objects.get(username="admin").check_password(password)

    again = Command()._ensure_admin(tmp_path)
    assert password not in again
    assert str(kept) in again and "0600" in again
