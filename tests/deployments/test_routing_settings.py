"""A project's routing settings (sticky canary, header and cookie routing): validated at the
API and the dashboard as attacker input, and handed by the engine to every weight change."""

import pytest

from deployments import engine
from deployments.models import Project, State
from deployments.runtimes.base import TrafficRouting
from deployments.services import deployment_abort, deployment_request
from tests.rollout import rollout_drive_until_wait

pytestmark = pytest.mark.django_db



@pytest.fixture
def shop(make_project, user):
    """A project whose admin (not staff) is the API's user: these fields are the admin's to set."""
    from deployments.models import Membership, Role

    shop = make_project(slug="shop", repository="acme/shop")
    Membership.objects.create(project=shop, user=user, role=Role.ADMIN)
    return shop


@pytest.mark.parametrize("field,value,words", [
    ("canary_header", "X-Canary: always", "header"),
    ("canary_header", "X-Canary\r\nX-Evil: 1", "header"),
    ("canary_header", "X#Canary", "header"),
    ("canary_header", "X-Canary)\n    use_backend be_other", "header"),
    ("canary_header", "Host", "managed by HTTP or the platform"),
    ("canary_header", "Cookie", "managed by HTTP or the platform"),
    ("canary_header", "x" * 64, "canary_header"),
    ("canary_header", "%[src]", "header"),
    ("canary_header_value", "always yes", "value"),
    ("canary_header_value", "", "canary_header_value"),
    ("canary_header_value", "a;b", "value"),
    ("canary_cookie", "a=b", "cookie"),
    ("canary_cookie", "sb_client", "platform's own"),
    ("sticky_canary", "sometimes", "sticky_canary"),
])
def test_bad_routing_settings_are_a_400_with_a_message(api, shop, field, value, words):
    response = api.patch("/api/projects/shop/", {field: value}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert words in body["message"], body
    project = Project.objects.get(slug="shop")
    assert (project.canary_header, project.canary_header_value, project.canary_cookie, project.sticky_canary) == (
        "", "always", "", False)


def test_routing_settings_round_trip_and_are_audited(api, shop):
    response = api.patch("/api/projects/shop/", {"sticky_canary": True, "canary_header": "X-Canary",
                                                "canary_header_value": "team-a", "canary_cookie": "canary"},
                         format="json")
    assert response.status_code == 200, response.json()
    body = api.get("/api/projects/shop/").json()
    assert (body["sticky_canary"], body["canary_header"], body["canary_header_value"], body["canary_cookie"]) == (
        True, "X-Canary", "team-a", "canary")
    from deployments.models import AuditEntry

    entry = AuditEntry.objects.get(action="project.update")
    assert entry.data["canary_header"] == {"from": "", "to": "X-Canary"}


# --- the engine hands the settings to the runtime -------------------------------------------

@pytest.fixture
def hello(make_project, memory_runtime):
    return make_project(keep_warm_seconds=300, watch_seconds=0, sticky_canary=True, canary_header="X-Canary",
                        strategy={"steps": [{"weight": 10, "wait": None}]})


def test_a_canary_step_routes_the_header_to_the_new_revision_and_the_switch_clears_it(hello, user, memory_runtime):
    rollout_drive_until_wait(deployment_request(project=hello, sha="a" * 40, actor=user))
    assert memory_runtime.routing["hello"] == TrafficRouting(sticky=True, header="X-Canary", preview="")
    d = rollout_drive_until_wait(deployment_request(project=hello, sha="b" * 40, actor=user))
    assert d.state == State.SWITCHING and memory_runtime.weights["hello"] == {"2": 10, "1": 90}
    assert memory_runtime.routing["hello"] == TrafficRouting(sticky=True, header="X-Canary", preview="2")
    engine.rollout_promote(deployment=d)
    assert rollout_drive_until_wait(d).state == State.SUCCEEDED
    assert memory_runtime.routing["hello"].preview == ""


def test_an_aborted_canary_no_longer_takes_the_header(hello, user, memory_runtime):
    rollout_drive_until_wait(deployment_request(project=hello, sha="a" * 40, actor=user))
    d = rollout_drive_until_wait(deployment_request(project=hello, sha="b" * 40, actor=user))
    assert memory_runtime.routing["hello"].preview == "2"
    d = deployment_abort(project=hello, number=d.number, actor=user)
    assert d.state == State.FAILED
    assert memory_runtime.weights["hello"] == {"1": 100}
    assert memory_runtime.routing["hello"].preview == ""
