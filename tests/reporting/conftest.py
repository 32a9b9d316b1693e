"""Reporting against the fake GitHub API and local receivers, with the real PostgreSQL.

Rollout tests use transactional databases: the listeners run after a real commit.
"""

from __future__ import annotations

import copy

import pytest
from django.utils import timezone

from tests.doubles.github_api import FakeGitHub

SHA_A, SHA_B, SHA_C = "a" * 40, "b" * 40, "c" * 40


@pytest.fixture
def fake_github(settings):
    fake = FakeGitHub(repositories=("octo/hello",), tokens=("good-token", "project-token")).start()
    switchback = copy.deepcopy(settings.SWITCHBACK)
    switchback["GITHUB"].update(API_URL=fake.url, TOKEN="good-token", TIMEOUT_SECONDS=5.0,
                                APP_ID="", APP_PRIVATE_KEY="", APP_PRIVATE_KEY_FILE="",
                                ENVIRONMENT_URL="https://{project}.apps.example.com")
    switchback["PUBLIC_URL"] = "https://switchback.example.com"
    settings.SWITCHBACK = switchback
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _quiet_broker(monkeypatch, request):
    """Workers are driven by the test (stream_send, sweeps): nothing consumes the broker
    (tests marked real_broker run real workers)."""
    from reporting import outbox

    kicks: list = []
    if request.node.get_closest_marker("real_broker"):
        return kicks
    monkeypatch.setattr(outbox, "stream_kick", lambda **kw: kicks.append(kw) or True)
    return kicks


@pytest.fixture
def gh_project(make_project, memory_runtime, fake_github):
    from reporting.models import GitHubConnection

    project = make_project(keep_warm_seconds=300, watch_seconds=0)
    GitHubConnection.objects.create(project=project)
    return project


def send_all(*, now=None, rounds: int = 20) -> int:
    """What the workers would do: send every due stream until nothing more is due."""
    from reporting import outbox

    total = 0
    for _ in range(rounds):
        streams = outbox.streams_due(now=now or timezone.now())
        if not streams:
            break
        sent = sum(outbox.stream_send(project_id=p, destination_id=d, now=now) for p, d in streams)
        total += sent
        if not sent:
            break
    return total
