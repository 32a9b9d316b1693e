"""The sample project `up --demo` deploys: a git repository made from examples/hello under
var/demo/hello, with two commits, so the first thing a new user can try is a rollback.

`manage.py demo_commit` adds a commit and deploys it (for trying canaries and rollbacks
again).  Git runs with argument lists and fixed options; nothing here takes user input
beyond a commit message, which goes to git as the value of ``-m``.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

from .models import FINAL_STATES, Deployment, Project
from .services import deployment_request, project_create

DEMO_SLUG = "hello"
DEMO_KEEP_WARM_SECONDS = 3600
GIT_IDENTITY = ["-c", "user.name=Switchback Demo", "-c", "user.email=demo@localhost"]


def demo_repo_path() -> Path:
    return Path(settings.VAR_DIR) / "demo" / DEMO_SLUG


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *GIT_IDENTITY, *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def demo_commit_make(*, repo: Path, message: str) -> str:
    """A new commit in the demo repository (a line in CHANGES.md); returns its sha."""
    changes = repo / "CHANGES.md"
    count = len(changes.read_text().splitlines()) if changes.exists() else 0
    with changes.open("a") as out:
        out.write(f"- change {count + 1}: {message}\n")
    _git(repo, "add", "CHANGES.md")
    _git(repo, "commit", "-q", "-m", message)  # -m takes the next argument as its value, always
    return _git(repo, "rev-parse", "HEAD")


def demo_repo_ensure() -> list[str]:
    """The demo repository with at least two commits; returns its first two shas, oldest first."""
    repo = demo_repo_path()
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        shutil.copytree(Path(settings.BASE_DIR) / "examples" / "hello", repo, dirs_exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "Sample app")
    shas = _git(repo, "rev-list", "--reverse", "HEAD").splitlines()
    if len(shas) < 2:
        shas.append(demo_commit_make(repo=repo, message="Second revision of the sample app"))
    return shas[:2]


def demo_project_ensure() -> Project:
    project = Project.objects.filter(slug=DEMO_SLUG).first()
    if project is None:
        # #1 stays warm for an hour after #2 goes live (the default is 30 s), so the first
        # Rollback a new user clicks is the instant one: weights only, no start.
        project = project_create(actor=None, name="Hello", slug=DEMO_SLUG, repository="",
                                 clone_url=f"file://{demo_repo_path()}", webhook_secret=secrets.token_hex(16),
                                 keep_warm_seconds=DEMO_KEEP_WARM_SECONDS)
    return project


def demo_next_deploy(*, project: Project, shas: list[str]) -> Deployment | None:
    """Deploy the first of ``shas`` not yet deployed, once nothing is in flight; else None.

    One at a time: a second request while the first is queued would supersede it, and the
    point of the demo is two revisions that both went live.
    """
    deployments = project.deployments.all()
    if deployments.exclude(state__in=FINAL_STATES).exists():
        return None
    for sha in shas:
        if not deployments.filter(commit_sha=sha).exists():
            return deployment_request(project=project, sha=sha, actor=None)
    return None


def demo_commit_deploy(*, message: str) -> Deployment:
    """`manage.py demo_commit`: a new commit in the demo repository, deployed."""
    repo = demo_repo_path()
    if not (repo / ".git").exists():
        demo_repo_ensure()
    sha = demo_commit_make(repo=repo, message=message)
    return deployment_request(project=demo_project_ensure(), sha=sha, actor=None, message=message)
