"""SWITCHBACK_REGISTRY on the single host, against a real registry (Distribution, Debian's
docker-registry): built images are pushed there, and a revision whose image is gone from
the host (pruned, or another host) is pulled back from it and starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from deployments.runtimes.base import BuildSpec, HealthState, Probe, RevisionSpec
from deployments.runtimes.single_host import SingleHostRuntime
from deployments.runtimes.single_host.engine_api import connect
from deployments.runtimes.single_host.images import image_tag
from tests.single_host_fixtures import GitRepo, free_port

from .helpers import get, wait_health

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

READY = Probe(path="/readyz", period_seconds=0.2, timeout_seconds=1, failure_threshold=3)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        pytest.skip("docker-registry not installed (run scripts/install-system-deps.sh)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\n"
                      f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(root / "log", "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"the registry did not start: {(root / 'log').read_text()[-2000:]}")
            time.sleep(0.1)
    yield address
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def runtime_with_registry(registry, tmp_path_factory):
    """A runtime whose engine trusts the plain-HTTP test registry, as an operator would set
    it up (registries.conf "insecure"), through its own Podman service."""
    root = tmp_path_factory.mktemp("engine")
    conf = root / "registries.conf"
    conf.write_text(f'unqualified-search-registries = []\n\n[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
    previous = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    os.environ["CONTAINERS_REGISTRIES_CONF"] = str(conf)
    try:
        engine = connect(f"unix://{root}/podman.sock", start_service=True)
    finally:
        if previous is None:
            os.environ.pop("CONTAINERS_REGISTRIES_CONF", None)
        else:
            os.environ["CONTAINERS_REGISTRIES_CONF"] = previous
    runtime = SingleHostRuntime(engine.url, state_dir=str(root / "state"), haproxy_bind=f"127.0.0.1:{free_port()}")
    runtime.router.ensure_running()
    yield runtime, engine
    runtime.close(stop_router=True)
    engine.stop()


def registry_json(registry: str, path: str, accept: str = "") -> tuple[dict, dict]:
    request = urllib.request.Request(f"http://{registry}{path}", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()), dict(response.headers)


def test_built_images_are_pushed_and_pulled_back_when_gone(runtime_with_registry, registry, project_prefix,
                                                          tmp_path):
    runtime, engine = runtime_with_registry
    project = f"{project_prefix}-reg"
    repo = GitRepo(str(tmp_path))
    sha = repo.commit_example("hello", "pushed")
    lines: list[str] = []
    built = runtime.build(spec=BuildSpec(project=project, sha=sha, clone_url=repo.url, registry=registry),
                          log=lines.append)
    try:
        assert built.ref == f"{registry}/{project}:{sha}"
        tags, _ = registry_json(registry, f"/v2/{project}/tags/list")
        assert tags == {"name": project, "tags": [sha]}
        _, headers = registry_json(registry, f"/v2/{project}/manifests/{sha}",
                                   accept="application/vnd.oci.image.manifest.v1+json, "
                                          "application/vnd.docker.distribution.manifest.v2+json")
        assert built.digest == headers["Docker-Content-Digest"]  # the pushed manifest, recorded
        assert any(line.startswith(f"pushed {built.ref}") for line in lines), lines

        # The image leaves this host (pruned, say); starting the revision pulls it back.
        for name in (built.ref, image_tag(project, sha, instance=runtime.instance)):
            engine.client.images.remove(name, force=True)
        runtime.start_revision(spec=RevisionSpec(project=project, revision="1", image=built.ref, sha=sha,
                                                 readiness=READY))
        assert wait_health(runtime, project, "1").state == HealthState.READY
        runtime.set_traffic(project=project, weights={"1": 100})
        status, body = get(runtime, project, "/version")
        assert status == 200 and sha[:7] in body
    finally:
        runtime.discard_revision(project=project, revision="1")
        for container in engine.client.containers.list(all=True, filters={"label": f"switchback.project={project}"}):
            container.remove(force=True)
        for image in engine.client.images.list(filters={"label": f"switchback.project={project}"}):
            for name in image.tags or [image.id]:
                engine.client.images.remove(name, force=True)
