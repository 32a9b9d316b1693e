"""No merge is lost: with the broker down the webhook still answers 202, the sweep catches up."""

import json

import pytest
from celery import current_app

from deployments.models import Deployment
from deployments.services import outbox_sweep

pytestmark = pytest.mark.django_db(transaction=True)

PUSH = {"ref": "refs/heads/main", "after": "2" * 40, "repository": {"full_name": "octo/hello"},
        "head_commit": {"message": "m", "author": {"username": "mona"}}}


def point_broker_at(url: str) -> None:
    app = current_app._get_current_object()
    app.conf.broker_url = url
    app._pool = None  # drop cached connections so the next publish uses the new URL
    app.amqp._producer_pool = None


@pytest.fixture
def broker():
    """Switch the Celery app between the real Redis and a port where nothing listens."""
    good = current_app.conf.broker_url

    class Broker:
        def down(self):
            point_broker_at("redis://127.0.0.1:1/15")

        def up(self):
            point_broker_at(good)

    yield Broker()
    point_broker_at(good)


def test_webhook_answers_202_with_broker_down_and_sweep_enqueues_later(make_project, deliver, redis_client,
                                                                       broker):
    make_project()
    broker.down()
    response = deliver("push", json.dumps(PUSH).encode())
    assert response.status_code == 202
    deployment = Deployment.objects.get()
    assert deployment.state == "queued" and deployment.enqueued_at is None
    assert outbox_sweep(stale_after=0) == 0  # still down: nothing published, nothing lost

    broker.up()
    assert outbox_sweep(stale_after=30) == 1
    deployment.refresh_from_db()
    assert deployment.enqueued_at is not None
    message = json.loads(redis_client.lindex("celery", 0))
    assert message["headers"]["task"] == "deployments.tasks.rollout_advance"
    assert message["headers"]["argsrepr"].startswith(f"[{deployment.pk},")
    # Already handed out and fresh: the next sweep does not publish it twice.
    assert outbox_sweep(stale_after=30) == 0
