"""Notifications: Slack-format and signed JSON receivers, retries, Send test, hostile URLs."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments import watch
from deployments.models import Deployment, Project, State
from deployments.runtimes.base import LivenessFailure
from deployments.services import deployment_request
from reporting import services
from reporting.models import NotificationDestination, Report
from tests.reporting.conftest import SHA_A, SHA_B, send_all
from tests.reporting.receivers import Receiver
from tests.rollout import rollout_drive_until_wait as drive

ALL = ["deployment.started", "deployment.live", "deployment.failed", "deployment.rolled_back",
       "promotion.waiting", "promotion.scheduled_fired"]


def hmac_sha256(key: bytes, message: bytes) -> str:
    """RFC 2104 written out, independent of the hmac module the platform uses."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).hexdigest()


@pytest.fixture
def local_ok(settings):
    """The operator allows plain http and loopback for these tests' receivers."""
    settings.SWITCHBACK = {**settings.SWITCHBACK, "NOTIFY": {
        "ALLOWED_HTTP_HOSTS": ["127.0.0.1"], "ALLOWED_PRIVATE_NETWORKS": ["127.0.0.1/32"], "TIMEOUT_SECONDS": 5}}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def project(make_project, memory_runtime, local_ok):
    return make_project(keep_warm_seconds=300, watch_seconds=0)


def add(project, receiver, kind, events=ALL, secret=None):
    return services.notification_destination_create(project=project, actor=None, name=kind, kind=kind,
                                                    url=receiver.url(), events=events, secret=secret)


@pytest.mark.django_db(transaction=True)
def test_slack_format_receiver_gets_started_and_live(project, user, receiver):
    add(project, receiver, "slack")
    drive(deployment_request(project=project, sha=SHA_A, actor=user))
    send_all()
    payloads = receiver.payloads()
    assert [p["text"] for p in payloads] == [f"Hello: deployment #1 ({SHA_A[:7]}) started",
                                            f"Hello: #1 ({SHA_A[:7]}) is live"]
    live = payloads[1]["attachments"][0]
    assert live["color"] == "#2eb886" and live["title_link"].endswith("/projects/hello/deployments/1/")
    assert {"title": "Commit", "value": SHA_A[:7], "short": True} in live["fields"]
    assert "x-switchback-signature-256" not in receiver.received[0]["headers"]


@pytest.mark.django_db(transaction=True)
def test_the_json_webhook_is_signed_and_documented(project, user, receiver, memory_runtime):
    destination = add(project, receiver, "webhook", events=["deployment.failed"], secret="shh-its-a-secret")
    memory_runtime.fail_build[SHA_A] = "no Dockerfile"
    drive(deployment_request(project=project, sha=SHA_A, actor=user))
    send_all()
    [request] = receiver.received
    headers, raw = request["headers"], request["raw"]
    assert headers["x-switchback-signature-256"] == "sha256=" + hmac_sha256(b"shh-its-a-secret", raw)
    assert headers["x-switchback-event"] == "deployment.failed"
    body = json.loads(raw)
    assert body["event"] == "deployment.failed" and body["delivery"] == headers["x-switchback-delivery"]
    assert body["project"]["slug"] == "hello" and body["project"]["repository"] == "octo/hello"
    assert body["deployment"]["number"] == 1 and body["deployment"]["sha"] == SHA_A
    assert body["deployment"]["state"] == State.FAILED and "no Dockerfile" in body["deployment"]["failure_reason"]
    assert body["rollback"] is None and "failed" in body["text"]
    row = Report.objects.get(destination=destination)
    assert (row.state, row.response_code, row.attempts) == ("sent", 200, 1)


@pytest.mark.django_db(transaction=True)
def test_a_500_is_retried_with_the_same_signed_body(project, user, local_ok):
    receiver = Receiver(statuses=[500, 503])
    try:
        destination = add(project, receiver, "webhook", events=["deployment.live"], secret="k")
        drive(deployment_request(project=project, sha=SHA_A, actor=user))
        send_all()
        row = Report.objects.get(destination=destination)
        assert (row.state, row.response_code, row.attempts) == ("pending", 500, 1)
        send_all(now=timezone.now() + timedelta(minutes=2))
        send_all(now=timezone.now() + timedelta(minutes=5))
        row.refresh_from_db()
        assert (row.state, row.response_code, row.attempts) == ("sent", 200, 3)
        raws = {r["raw"] for r in receiver.received}
        assert len(receiver.received) == 3 and len(raws) == 1  # the same delivery, byte for byte
        assert {r["headers"]["x-switchback-signature-256"] for r in receiver.received} == {
            "sha256=" + hmac_sha256(b"k", raws.pop())}
    finally:
        receiver.stop()


@pytest.mark.django_db(transaction=True)
def test_a_gate_rollback_is_told_with_its_reason(project, user, receiver, memory_runtime):
    add(project, receiver, "webhook", events=["deployment.rolled_back"], secret="k")
    drive(deployment_request(project=project, sha=SHA_A, actor=user))
    Project.objects.filter(pk=project.pk).update(watch_seconds=60)
    project.refresh_from_db()
    d2 = drive(deployment_request(project=project, sha=SHA_B, actor=user))
    memory_runtime.liveness_failures = [LivenessFailure("2", "replica 0: exited 137")]
    watch.rollout_watch_step(deployment_id=d2.pk)
    drive(Deployment.objects.get(number=3))
    send_all()
    [body] = receiver.payloads()
    assert body["rollback"] == {"to": 1, "from": 2, "automatic": True, "reason": "replica 0: exited 137",
                                "by": "gate"}
    assert body["text"] == "Hello: Automatic rollback from #2 to #1 (#3): replica 0: exited 137"


@pytest.mark.django_db(transaction=True)
def test_a_held_canary_step_says_promotion_is_waiting(project, user, receiver):
    add(project, receiver, "slack", events=["promotion.waiting"])
    drive(deployment_request(project=project, sha=SHA_A, actor=user))
    Project.objects.filter(pk=project.pk).update(strategy={"steps": [{"weight": 10, "wait": None}]})
    project.refresh_from_db()
    d2 = drive(deployment_request(project=project, sha=SHA_B, actor=user))
    assert d2.state == State.SWITCHING
    send_all()
    assert [p["text"] for p in receiver.payloads()] == [
        f"Hello: #2 ({SHA_B[:7]}) holds at a canary step, waiting for someone to promote it"]


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_switch_tells_the_destinations_it_fired(project, user, receiver, monkeypatch):
    from datetime import UTC, datetime

    from tests.deployments.test_schedules_engine import Clock

    clock = Clock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    monkeypatch.setattr("django.utils.timezone.now", clock)
    monkeypatch.setattr("deployments.waits.sleep", clock.advance)
    add(project, receiver, "slack", events=["promotion.scheduled_fired"])
    drive(deployment_request(project=project, sha=SHA_A, actor=user))
    Project.objects.filter(pk=project.pk).update(strategy={"at": "2026-12-01T12:00", "tz": "UTC"})
    project.refresh_from_db()
    d2 = drive(deployment_request(project=project, sha=SHA_B, actor=user))
    assert d2.state == State.SWITCHING  # built and warm, waiting for its time
    send_all()
    assert receiver.payloads() == []
    clock.set(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    assert drive(d2).state == State.SUCCEEDED
    send_all()
    assert [p["text"] for p in receiver.payloads()] == [
        f"Hello: #2 ({SHA_B[:7]}) reached its scheduled time; its traffic starts to move"]


@pytest.mark.django_db(transaction=True)
def test_send_test_button_and_the_delivery_log(project, user, client, local_ok):
    receiver = Receiver(statuses=[500])
    try:
        destination = add(project, receiver, "slack")
        user.is_staff = True
        user.save()
        client.force_login(user)
        client.post(reverse("reporting:destination-test", args=["hello", destination.pk]))
        send_all()
        page = client.get(reverse("reporting:page", args=["hello"])).content.decode()
        assert "retry at" in page and "500" in page  # the log: status, code, retry
        send_all(now=timezone.now() + timedelta(minutes=1))
        assert receiver.payloads()[-1]["text"] == "Hello: a test notification from Switchback to slack"
        page = client.get(reverse("reporting:page", args=["hello"])).content.decode()
        assert "Sent" in page and receiver.url() not in page  # the URL is write-only
    finally:
        receiver.stop()


@pytest.mark.django_db
@pytest.mark.parametrize("url,error", [
    ("http://hooks.example.com/x", "use https"),
    ("https://127.0.0.1/x", "loopback"),
    ("https://10.1.2.3/x", "private"),
    ("https://[::1]/x", "loopback"),
    ("https://169.254.169.254/latest/meta-data", "reserved"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
    ("file:///etc/passwd", "https"),
    ("gopher://hooks.example.com/", "https"),
    ("https://hooks.example.com/a b", "https"),
])
def test_hostile_destination_urls_are_refused_and_nothing_is_written(make_project, api, user, url, error):
    user.is_staff = True
    user.save()
    make_project()
    response = api.post("/api/projects/hello/notifications/",
                        {"name": "x", "kind": "slack", "url": url, "events": ["deployment.live"]}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("bad_url", "forbidden_address") and error in response.json()["message"]
    assert NotificationDestination.objects.count() == 0


@pytest.mark.django_db
def test_a_name_resolving_to_loopback_is_refused_at_send_time(make_project, user):
    project = make_project()
    destination = services.notification_destination_create(
        project=project, actor=None, name="sneaky", kind="slack", url="https://localhost/hook",
        events=["deployment.live"])
    row = services.notification_destination_test(destination=destination, actor=None)
    send_all()
    row.refresh_from_db()
    assert row.state == "failed" and "loopback" in row.last_error


@pytest.mark.django_db
def test_the_api_never_shows_the_url_or_secret_and_checks_events(make_project, api, user):
    user.is_staff = True
    user.save()
    make_project()
    created = api.post("/api/projects/hello/notifications/",
                       {"name": "ops", "kind": "webhook", "url": "https://hooks.example.com/T0/B0/XyZ",
                        "events": ["deployment.failed"]}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["host"] == "hooks.example.com" and body["secret_set"] is True
    assert "XyZ" not in json.dumps(body) and "url" not in body and "secret" not in body
    bad = api.post("/api/projects/hello/notifications/",
                   {"name": "ops", "kind": "slack", "url": "https://hooks.example.com/x", "events": ["nope"]},
                   format="json")
    assert bad.status_code == 400 and "unknown nope" in bad.json()["message"]
