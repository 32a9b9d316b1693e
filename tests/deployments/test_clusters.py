"""Projects on more than one Kubernetes cluster: the operator registers clusters by name
(KUBE_CLUSTERS: a kubeconfig path and context, or the in-cluster ServiceAccount, and a
namespace); a project that names one runs there, the others on the platform's own."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import env_kube_clusters
from deployments.models import State
from deployments.runtimes import runtime_cache_clear
from deployments.services import deployment_request, deployment_rollback
from tests.doubles.kube_api.fixtures import kube_api  # noqa: F401  (a fixture)
from tests.doubles.kube_api.server import FakeKubeAPI
from tests.rollout import rollout_drive

pytestmark = pytest.mark.django_db
REV = "switchback.dev/revision"


def write_kubeconfig(path, server_url):
    """Two contexts: the one the platform is told to use, and a decoy pointing nowhere."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "eu", "cluster": {"server": server_url}},
                     {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "deployer", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "eu-deployer", "context": {"cluster": "eu", "user": "deployer"}},
                     {"name": "decoy", "context": {"cluster": "nowhere", "user": "deployer"}}],
        "current-context": "decoy",
    }))
    return path


@pytest.fixture
def eu_api():
    api = FakeKubeAPI().start()
    yield api
    api.stop()


@pytest.fixture
def two_clusters(settings, kube_api, eu_api, tmp_path):  # noqa: F811
    kubeconfig = write_kubeconfig(tmp_path / "eu.kubeconfig", eu_api.url)
    settings.SWITCHBACK = {
        **settings.SWITCHBACK,
        "KUBERNETES": {"host": kube_api.url, "namespace": "default", "progress_deadline_seconds": 5},
        "KUBE_CLUSTERS": {"eu": {"kubeconfig": str(kubeconfig), "context": "eu-deployer", "namespace": "apps"}},
    }
    runtime_cache_clear()
    yield kube_api, eu_api
    runtime_cache_clear()


drive = rollout_drive


def names(api, plural):
    return sorted(f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in api.list(plural))


def test_each_project_runs_on_its_own_cluster(two_clusters, make_project, user):
    home_api, eu_api = two_clusters
    common = {"runtime": "kubernetes", "image_template": "registry.example.com/{project}:{sha}",
              "probe_period_seconds": 0.1}
    home = make_project(slug="home", repository="octo/home", **common)
    away = make_project(slug="away", repository="octo/away", cluster="eu", **common)

    for project in (home, away):
        for sha in ("a" * 40, "b" * 40):
            deployment = drive(deployment_request(project=project, sha=sha, actor=user))
            assert deployment.state == State.SUCCEEDED, deployment.failure_reason

    assert names(home_api, "services") == ["default/home", "default/home-r1", "default/home-r2"]
    assert names(eu_api, "services") == ["apps/away", "apps/away-r1", "apps/away-r2"]
    assert names(eu_api, "deployments") == ["apps/away-r1", "apps/away-r2"]
    assert eu_api.get("services", "apps", "away")["spec"]["selector"][REV] == "2"
    # The eu API server saw the kubeconfig's credentials for the context asked for.
    assert any(auth == "Bearer t0ken" for auth in eu_api.authorizations)

    rollback = drive(deployment_rollback(project=away, number=1, actor=user))
    assert rollback.state == State.SUCCEEDED, rollback.failure_reason
    assert eu_api.get("services", "apps", "away")["spec"]["selector"][REV] == "1"
    assert home_api.get("services", "default", "home")["spec"]["selector"][REV] == "2"  # untouched


def test_the_api_refuses_a_cluster_that_is_not_registered(two_clusters, api, user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    base = {"name": "Shop", "slug": "shop", "repository": "acme/shop", "runtime": "kubernetes"}
    response = api.post("/api/projects/", {**base, "cluster": "mars"}, format="json")
    assert response.status_code == 400, response.json()
    message = response.json()["message"]
    assert "mars" in message and "registered: eu" in message

    response = api.post("/api/projects/", {**base, "runtime": "single-host", "cluster": "eu"}, format="json")
    assert response.status_code == 400
    assert "kubernetes runtime only" in response.json()["message"]

    response = api.post("/api/projects/", {**base, "cluster": "eu"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["cluster"] == "eu"
    response = api.patch("/api/projects/shop/", {"cluster": "mars"}, format="json")
    assert response.status_code == 400 and "mars" in response.json()["message"]
    assert api.get("/api/projects/shop/").json()["cluster"] == "eu"  # nothing changed

    # The project's admin who is not platform staff may change everything else, not this.
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    response = api.patch("/api/projects/shop/", {"cluster": ""}, format="json")
    assert response.status_code == 403, response.json()
    assert "only platform staff" in response.json()["message"]
    assert api.patch("/api/projects/shop/", {"replicas": 2, "cluster": "eu"}, format="json").status_code == 200


@pytest.mark.parametrize("raw,words", [
    ("{not json", "not valid JSON"),
    ('["eu"]', "must be a JSON object"),
    ('{"EU!": {"kubeconfig": "/x"}}', "not a cluster name"),
    ('{"eu": {"kubeconfig": "/x", "token": "t"}}', "takes an object with the keys"),
    ('{"eu": {"namespace": "apps"}}', "names no kubeconfig"),
    ('{"eu": {"in_cluster": "false"}}', "in_cluster must be true or false"),
    ('{"eu": {"kubeconfig": ["/x"]}}', "kubeconfig must be a string"),
])
def test_a_bad_kube_clusters_setting_stops_the_platform_with_a_reason(monkeypatch, raw, words):
    monkeypatch.setenv("KUBE_CLUSTERS", raw)
    with pytest.raises(ImproperlyConfigured, match=words):
        env_kube_clusters("KUBE_CLUSTERS")


def test_kube_clusters_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("KUBE_CLUSTERS", '{"eu": {"kubeconfig": "/etc/switchback/eu.yaml", "context": "eu"}, '
                                        '"local": {"in_cluster": true, "namespace": "apps"}}')
    assert env_kube_clusters("KUBE_CLUSTERS") == {
        "eu": {"kubeconfig": "/etc/switchback/eu.yaml", "context": "eu"},
        "local": {"in_cluster": True, "namespace": "apps"},
    }
    monkeypatch.delenv("KUBE_CLUSTERS")
    assert env_kube_clusters("KUBE_CLUSTERS") == {}


def test_where_a_live_project_runs_cannot_change(two_clusters, make_project, user, api):
    home_api, eu_api = two_clusters
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    project = make_project(runtime="kubernetes", image_template="registry.example.com/{project}:{sha}",
                           probe_period_seconds=0.1)
    # Not live yet: it may still move.
    assert api.patch("/api/projects/hello/", {"cluster": "eu"}, format="json").status_code == 200
    assert api.patch("/api/projects/hello/", {"cluster": ""}, format="json").status_code == 200
    project.refresh_from_db()
    assert rollout_drive(deployment_request(project=project, sha="a" * 40, actor=user)).state == State.SUCCEEDED

    response = api.patch("/api/projects/hello/", {"cluster": "eu"}, format="json")
    assert response.status_code == 400
    assert "cannot change" in response.json()["message"] and "new project" in response.json()["message"]
    response = api.patch("/api/projects/hello/", {"runtime": "single-host"}, format="json")
    assert response.status_code == 400 and "run on kubernetes;" in response.json()["message"]
    # Other settings still change.
    assert api.patch("/api/projects/hello/", {"replicas": 2}, format="json").status_code == 200
    project.refresh_from_db()
    assert (project.runtime, project.cluster, project.replicas) == ("kubernetes", "", 2)
    assert eu_api.list("deployments") == []


def test_a_deployment_recorded_before_clusters_existed_runs_on_the_platforms_own(two_clusters, make_project,
                                                                                user):
    home_api, eu_api = two_clusters
    project = make_project(runtime="kubernetes", image_template="registry.example.com/{project}:{sha}",
                           probe_period_seconds=0.1)
    deployment = deployment_request(project=project, sha="a" * 40, actor=user)
    config = {k: v for k, v in deployment.config.items() if k != "cluster"}  # as rows made before 0006
    type(deployment).objects.filter(pk=deployment.pk).update(config=config)
    assert rollout_drive(deployment).state == State.SUCCEEDED
    assert home_api.get("services", "default", "hello")["spec"]["selector"][REV] == "1"
    assert eu_api.list("services") == []
