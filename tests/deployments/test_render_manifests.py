"""`manage.py render_manifests`: a cluster-free dry run that validates strictly."""

import io

import kubernetes_validate
import pytest
import yaml
from django.core.management import CommandError, call_command

from deployments.services import deployment_request

pytestmark = pytest.mark.django_db


def render(*args) -> list[dict]:
    out = io.StringIO()
    call_command("render_manifests", *args, stdout=out)
    return list(yaml.safe_load_all(out.getvalue()))


def test_renders_every_object_as_valid_multidoc_yaml(make_project, user):
    project = make_project(runtime="kubernetes", env={"DATABASE_PASSWORD": "hunter2"}, replicas=3)
    deployment_request(project=project, sha="d" * 40, actor=user)
    objects = render("hello", "--deployment", "1")
    kinds = [o["kind"] for o in objects]
    assert kinds == ["Secret", "Deployment", "Service", "Service"]
    deployment = objects[1]
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "hello:" + "d" * 40
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
    assert "hunter2" not in yaml.safe_dump_all(objects)  # env values redacted by default


def test_gateway_router_adds_a_weighted_httproute(make_project, user):
    project = make_project(runtime="kubernetes", router="gateway")
    deployment_request(project=project, sha="d" * 40, actor=user)
    route = [o for o in render("hello", "--deployment", "1") if o["kind"] == "HTTPRoute"][0]
    assert route["spec"]["hostnames"] == ["hello.localhost"]
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [100]


def test_unknown_deployment_is_a_clear_error(make_project):
    make_project(runtime="kubernetes")
    with pytest.raises(CommandError, match="#7 does not exist"):
        render("hello", "--deployment", "7")


def test_gateway_ingress_class_and_canary_header_come_from_the_environment(make_project, user, settings):
    settings.SWITCHBACK = {**settings.SWITCHBACK, "KUBE_GATEWAY": "edge/public", "KUBE_INGRESS_CLASS": "internal",
                           "KUBE_CANARY_HEADER": "X-Canary"}
    gw = make_project(runtime="kubernetes", router="gateway")
    deployment_request(project=gw, sha="d" * 40, actor=user)
    route = [o for o in render("hello", "--deployment", "1") if o["kind"] == "HTTPRoute"][0]
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "edge"}]
    ng = make_project(slug="shop", repository="acme/shop", runtime="kubernetes", router="nginx")
    deployment_request(project=ng, sha="e" * 40, actor=user)
    ingresses = [o for o in render("shop", "--deployment", "1") if o["kind"] == "Ingress"]
    assert {i["spec"]["ingressClassName"] for i in ingresses} == {"internal"}
    canary = [i for i in ingresses if i["metadata"]["name"] == "shop-canary"][0]
    assert canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"] == "X-Canary"
    for obj in ingresses:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_a_project_on_a_registered_cluster_renders_into_that_clusters_namespace(make_project, user, settings):
    settings.SWITCHBACK = {
        **settings.SWITCHBACK,
        "KUBERNETES": {**settings.SWITCHBACK.get("KUBERNETES", {}), "namespace": "platform",
                       "registry": "registry.example.com", "image_template": "{registry}/{project}:{sha}"},
        "KUBE_CLUSTERS": {"eu": {"kubeconfig": "/etc/switchback/eu.yaml", "namespace": "apps"}},
    }
    home = make_project(runtime="kubernetes")
    away = make_project(slug="away", repository="octo/away", runtime="kubernetes", cluster="eu")
    for project in (home, away):
        deployment_request(project=project, sha="d" * 40, actor=user)
    assert {o["metadata"]["namespace"] for o in render("hello", "--deployment", "1")} == {"platform"}
    objects = render("away", "--deployment", "1")
    assert {o["metadata"]["namespace"] for o in objects} == {"apps"}
    image = objects[1]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/away:" + "d" * 40
