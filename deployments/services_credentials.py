"""Deploy credentials for a private repository: an SSH deploy key Switchback generates.

The private half is stored encrypted (EncryptedTextField) and only ever leaves the
database for a fetch; the public half is shown so an admin can add it to the
repository as a read-only deploy key. The HTTPS token is a plain write-only field
(``git_token``) set through project_update. Audit rows name the key's fingerprint only.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from .models import Project
from .services import audit_record


def deploy_key_generate(*, comment: str) -> tuple[str, str]:
    """A new ed25519 key pair as (OpenSSH private key, OpenSSH public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}"


def deploy_key_fingerprint(public_key: str) -> str:
    """As ``ssh-keygen -l`` prints it: SHA256:<base64 of the key blob, unpadded>."""
    if not public_key:
        return ""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def project_deploy_key_generate(*, project: Project, actor) -> Project:
    """Generate (or replace) the project's SSH deploy key; the old one stops working here."""
    private, public = deploy_key_generate(comment=f"switchback-deploy-{project.slug}")
    with transaction.atomic():
        replaced = bool(project.deploy_key_public)
        project.deploy_key_private, project.deploy_key_public = private, public
        project.save(update_fields=["deploy_key_private", "deploy_key_public"])
        audit_record(
            actor=actor, action="project.deploy_key", project=project,
            summary=f"{'replaced' if replaced else 'generated'} the SSH deploy key",
            data={"fingerprint": deploy_key_fingerprint(public), "replaced": replaced},
        )
    return project


def project_deploy_key_remove(*, project: Project, actor) -> Project:
    with transaction.atomic():
        had = bool(project.deploy_key_public)
        project.deploy_key_private = project.deploy_key_public = ""
        project.save(update_fields=["deploy_key_private", "deploy_key_public"])
        if had:
            audit_record(actor=actor, action="project.deploy_key", project=project,
                         summary="removed the SSH deploy key", data={"removed": True})
    return project
