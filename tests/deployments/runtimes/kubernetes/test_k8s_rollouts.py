"""Rollout scenarios (after Argo Rollouts' and Flagger's end-to-end checks) run by the
real KubernetesRuntime and the official client against the fake API server over HTTP."""

from __future__ import annotations

import pytest

from deployments.errors import PermanentError
from deployments.runtimes.base import HealthState, Probe, RevisionSpec
from deployments.runtimes.kubernetes import ProjectOptions

NS = "default"
REV = "switchback.dev/revision"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


def spec(rev: str, image: str = "", replicas: int = 1, project: str = "hello",
         drain_seconds: float = 0) -> RevisionSpec:
    return RevisionSpec(
        project=project,
        revision=rev,
        image=image or f"{project}:{rev}",
        replicas=replicas,
        env={"GREETING": f"hi from r{rev}"},
        readiness=Probe("/readyz"),
        sha=f"{rev:0>40}",
        drain_seconds=drain_seconds,
    )


def live(kube_api, project="hello") -> str:
    return kube_api.get("services", NS, project)["spec"]["selector"][REV]


def replicas(kube_api, rev, project="hello") -> int:
    return kube_api.get("deployments", NS, f"{project}-r{rev}")["spec"]["replicas"]


def deploy(runtime, rev, **kw) -> None:
    runtime.start_revision(spec=spec(rev, **kw))
    health = runtime.wait_ready(project=kw.get("project", "hello"), revision=rev, timeout=10)
    assert health.state is HealthState.READY, health


def test_deploy_switch_and_retire(runtime, kube_api):
    deploy(runtime, "1", replicas=2)
    runtime.set_traffic(project="hello", weights={"1": 100})
    assert live(kube_api) == "1"
    deploy(runtime, "2", replicas=2)
    assert live(kube_api) == "1"  # starting a revision routes nothing to it
    runtime.set_traffic(project="hello", weights={"2": 100, "1": 0})
    assert live(kube_api) == "2"
    runtime.retire_revision(project="hello", revision="1")
    assert replicas(kube_api, "1") == 0  # kept cold for rollback
    observed = {o.revision: o for o in runtime.observe(project="hello")}
    assert observed["2"].weight == 100 and observed["2"].replicas == 2
    assert observed["1"].weight == 0
    secret = kube_api.get("secrets", NS, "hello-r2-env")
    assert secret["data"]["GREETING"]  # env reaches the pods through envFrom
    assert kube_api.get("deployments", NS, "hello-r2")["metadata"]["managedFields"][0]["manager"] == "switchback"


def test_retiring_does_not_wait_through_the_drain_in_the_worker(runtime, kube_api, monkeypatch):
    """The pods drain themselves (preStop); a worker slot is never held for the drain."""
    from deployments.runtimes.kubernetes import runtime as runtime_module

    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "2", drain_seconds=600)
    runtime.set_traffic(project="hello", weights={"2": 100, "1": 0})
    slept = []
    monkeypatch.setattr(runtime_module.time, "sleep", slept.append)
    runtime.retire_revision(project="hello", revision="1", drain_seconds=600)
    assert replicas(kube_api, "1") == 0 and 600 not in slept
    pod = kube_api.get("deployments", NS, "hello-r2")["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 600}}
    assert pod["terminationGracePeriodSeconds"] >= 600


def test_retiring_a_live_revision_is_refused(runtime):
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    with pytest.raises(PermanentError, match="still receives 100%"):
        runtime.retire_revision(project="hello", revision="1")
    runtime.retire_revision(project="hello", revision="404")  # absent: not an error


def test_rollback_to_a_warm_revision_only_changes_the_selector(runtime, kube_api):
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "2")
    runtime.set_traffic(project="hello", weights={"2": 100})
    kube_api.requests.clear()
    runtime.set_traffic(project="hello", weights={"1": 100})
    assert live(kube_api) == "1"
    writes = [(m, p) for m, p in kube_api.requests if m in ("PUT", "PATCH", "POST", "DELETE")]
    assert [p.split("?")[0] for _, p in writes] == ["/api/v1/namespaces/default/services/hello"]


def test_rollback_to_a_cold_revision_scales_up_then_switches(runtime, kube_api):
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "2")
    runtime.set_traffic(project="hello", weights={"2": 100})
    runtime.scale_to_zero(project="hello", revision="1")
    assert replicas(kube_api, "1") == 0
    assert runtime.revision_health(project="hello", revision="1").message == "scaled to zero"

    runtime.start_revision(spec=spec("1"))  # the rollback: same image, same env
    assert replicas(kube_api, "1") == 1
    assert runtime.wait_ready(project="hello", revision="1", timeout=10).state is HealthState.READY
    runtime.set_traffic(project="hello", weights={"1": 100, "2": 0})
    assert live(kube_api) == "1"


def test_never_ready_revision_fails_with_probe_reason_and_keeps_stable(runtime, kube_api):
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    kube_api.behave("hello:bad", "never_ready")
    runtime.start_revision(spec=spec("2", image="hello:bad"))
    health = runtime.wait_ready(project="hello", revision="2")  # the progress deadline: 2s
    assert health.state is HealthState.FAILED
    assert "not ready within" in health.message
    assert "Readiness probe failed" in health.message
    assert live(kube_api) == "1"
    assert runtime.revision_health(project="hello", revision="2").state is HealthState.FAILED


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("image_pull", "cannot be pulled"),
        ("crashloop", "CrashLoopBackOff"),
        ("unschedulable", "cannot be scheduled"),
    ],
)
def test_hopeless_revisions_fail_fast(runtime, kube_api, mode, reason):
    kube_api.behave("hello:broken", mode)
    runtime.start_revision(spec=spec("3", image="hello:broken"))
    health = runtime.wait_ready(project="hello", revision="3", timeout=30)
    assert "not ready within" not in health.message  # failed on its cause, not at the 30s deadline
    assert health.state is HealthState.FAILED
    assert reason in health.message


def test_missing_revision_is_failed(runtime):
    health = runtime.revision_health(project="hello", revision="9")
    assert health.state is HealthState.FAILED and "does not exist" in health.message


def route_weights(kube_api) -> dict[str, int]:
    route = kube_api.get("httproutes", NS, "hello")
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}


def test_gateway_weights_step_through_and_promote(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="gateway", hostnames=("hello.example.com",)))
    deploy(runtime, "1")
    deploy(runtime, "2")
    steps = [
        ({"1": 100, "2": 0}, "1"),
        ({"1": 90, "2": 10}, "1"),
        ({"1": 50, "2": 50}, "1"),
        ({"1": 0, "2": 100}, "2"),
    ]
    for weights, stable in steps:
        runtime.set_traffic(project="hello", weights=weights)
        assert route_weights(kube_api) == {f"hello-r{r}": w for r, w in weights.items()}
        assert live(kube_api) == stable
        assert runtime.current_weights("hello") == weights
    route = kube_api.get("httproutes", NS, "hello")
    assert route["spec"]["hostnames"] == ["hello.example.com"]


def test_gateway_abort_returns_all_traffic_to_stable(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="gateway"))
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "2")
    runtime.set_traffic(project="hello", weights={"1": 90, "2": 10})
    runtime.set_traffic(project="hello", weights={"1": 100, "2": 0})  # abort
    assert route_weights(kube_api) == {"hello-r1": 100, "hello-r2": 0}
    assert live(kube_api) == "1"
    runtime.scale_to_zero(project="hello", revision="2")
    assert replicas(kube_api, "2") == 0


def canary(kube_api) -> dict:
    return kube_api.get("ingresses", NS, "hello-canary")


def test_nginx_canary_weights_and_abort(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="nginx", hostnames=("hello.example.com",)))
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "2")
    for w in (0, 10, 50):
        runtime.set_traffic(project="hello", weights={"1": 100 - w, "2": w})
        ann = canary(kube_api)["metadata"]["annotations"]
        assert ann[CANARY_WEIGHT] == str(w) and ann["nginx.ingress.kubernetes.io/canary"] == "true"
        backend = canary(kube_api)["spec"]["rules"][0]["http"]["paths"][0]["backend"]
        assert backend["service"]["name"] == "hello-r2"
        assert live(kube_api) == "1"
        assert "annotations" not in kube_api.get("ingresses", NS, "hello")["metadata"]
    runtime.set_traffic(project="hello", weights={"1": 100, "2": 0})  # abort
    assert canary(kube_api)["metadata"]["annotations"][CANARY_WEIGHT] == "0"
    assert live(kube_api) == "1"
    runtime.set_traffic(project="hello", weights={"1": 50, "2": 50})
    runtime.set_traffic(project="hello", weights={"1": 0, "2": 100})  # promote
    assert live(kube_api) == "2"
    assert canary(kube_api)["metadata"]["annotations"][CANARY_WEIGHT] == "0"
    assert runtime.current_weights("hello") == {"2": 100}


def test_nginx_canary_header_is_removed_when_unset(runtime, kube_api):
    runtime.configure_project("hello", ProjectOptions(router="nginx", canary_header="X-Canary"))
    deploy(runtime, "1")
    deploy(runtime, "2")
    runtime.set_traffic(project="hello", weights={"1": 90, "2": 10})
    header = "nginx.ingress.kubernetes.io/canary-by-header"
    assert canary(kube_api)["metadata"]["annotations"][header] == "X-Canary"
    runtime.configure_project("hello", ProjectOptions(router="nginx"))
    runtime.set_traffic(project="hello", weights={"1": 80, "2": 20})
    # server-side apply drops the field our manager stopped setting
    assert header not in canary(kube_api)["metadata"]["annotations"]


def test_set_traffic_refuses_what_it_cannot_do(runtime):
    deploy(runtime, "1")
    deploy(runtime, "2")
    with pytest.raises(PermanentError, match="sum to 100"):
        runtime.set_traffic(project="hello", weights={"1": 60, "2": 60})
    with pytest.raises(PermanentError, match="cannot split"):
        runtime.set_traffic(project="hello", weights={"1": 50, "2": 50})
    with pytest.raises(PermanentError, match="not running"):
        runtime.set_traffic(project="hello", weights={"7": 100})


def test_evict_keeps_the_kept_cold_revisions(runtime, kube_api):
    for rev in ("1", "2", "3", "4"):
        runtime.start_revision(spec=spec(rev))
    runtime.set_traffic(project="hello", weights={"4": 100})
    for rev in ("1", "2", "3"):
        runtime.scale_to_zero(project="hello", revision=rev)  # keeps every one at zero
    assert len(kube_api.list("deployments", NS)) == 4
    # The platform's kept set decides; the live revision is never evicted even if not named.
    assert runtime.revisions_evict(project="hello", keep={"2", "3"}) == ["1"]
    names = sorted(d["metadata"]["name"] for d in kube_api.list("deployments", NS))
    assert names == ["hello-r2", "hello-r3", "hello-r4"]
    assert kube_api.get("secrets", NS, "hello-r1-env") is None
    assert kube_api.get("services", NS, "hello-r1") is None


def test_observe_all_projects(runtime):
    deploy(runtime, "1")
    runtime.set_traffic(project="hello", weights={"1": 100})
    deploy(runtime, "5", project="shop")
    runtime.set_traffic(project="shop", weights={"5": 100})
    seen = [(o.project, o.revision, o.weight, o.image) for o in runtime.observe()]
    assert seen == [("hello", "1", 100, "hello:1"), ("shop", "5", 100, "shop:5")]
