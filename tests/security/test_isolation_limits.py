"""Attack surface of an app container (issue 9, "Containers run with limits"): what a
replica may use and who root inside it is on the host.  Real Podman: the limits are read
back from the engine and from the kernel inside the container.
"""

from __future__ import annotations

import os

import pytest

from tests.deployments.runtimes.single_host.helpers import get

from .isolation_apps import app_start, replicas_of

pytestmark = [pytest.mark.containers, pytest.mark.haproxy]

MEMORY_MB, CPUS = 96, 0.5


@pytest.fixture(scope="module")
def app(runtime, project_prefix, tmp_path_factory):
    from tests.single_host_fixtures import GitRepo

    repo = GitRepo(str(tmp_path_factory.mktemp("limits-repo")))
    project = f"{project_prefix}-limits"
    app_start(runtime, repo, project=project, sha=repo.commit_example("hello", "limits"),
              memory_mb=MEMORY_MB, cpus=CPUS)
    (container,) = replicas_of(runtime, project)
    yield {"project": project, "container": container}
    runtime.retire_revision(project=project, revision="1")


def inside(container, command: str) -> str:
    result = container.exec_run(["sh", "-c", command])
    assert result.exit_code == 0, result.output
    return result.output.decode()


def test_the_engine_holds_the_limits(runtime, app):
    host = app["container"].attrs["HostConfig"]
    assert host["Memory"] == MEMORY_MB * 2**20
    assert host["MemorySwap"] == MEMORY_MB * 2**20  # no swap on top
    assert host["NanoCpus"] == int(CPUS * 1e9) or host["CpuQuota"] / host["CpuPeriod"] == CPUS
    assert host["PidsLimit"] == runtime.pids_limit > 0
    assert "no-new-privileges" in host["SecurityOpt"]
    assert not host.get("CapAdd") and not host.get("Privileged")
    assert {"NET_RAW", "CHOWN", "SETUID", "DAC_OVERRIDE", "NET_BIND_SERVICE"} <= set(host["CapDrop"])


def test_the_kernel_enforces_them_inside(app):
    status = dict(line.split(":\t", 1) for line in inside(app["container"], "cat /proc/self/status").splitlines()
                  if ":\t" in line)
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0  # root without capabilities
    assert status["NoNewPrivs"].strip() == "1"
    # cgroup v1 or v2, whichever the host runs.
    memory = inside(app["container"], "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
                                      " || cat /sys/fs/cgroup/memory.max")
    pids = inside(app["container"], "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    assert int(memory) == MEMORY_MB * 2**20
    assert pids.strip().isdigit() and int(pids) > 0


def test_root_in_the_container_is_not_root_on_the_host(app):
    container = app["container"]
    assert inside(container, "id -u").strip() == "0"
    inner, outer, size = (int(x) for x in inside(container, "cat /proc/self/uid_map").split()[:3])
    assert inner == 0 and outer >= 65536 and size >= 1  # uid 0 inside is an unprivileged uid outside
    # Seen from the host: the app's processes belong to that uid, not to root.
    pid = container.attrs["State"]["Pid"]
    assert os.stat(f"/proc/{pid}").st_uid == outer


def test_the_sample_app_still_serves_with_these_limits(runtime, app):
    status, body = get(runtime, app["project"], "/")
    assert status == 200 and "revision 1" in body


def test_an_app_can_run_as_a_non_root_user(runtime, project_prefix, tmp_path_factory):
    # What docs/security.md advises: a USER line in the Dockerfile.  userns=auto sizes the
    # namespace to cover that uid, and the app serves as before.
    from tests.single_host_fixtures import EXAMPLES, GitRepo

    repo = GitRepo(str(tmp_path_factory.mktemp("nonroot-repo")))
    repo.commit_example("hello", "non-root")
    with open(os.path.join(EXAMPLES, "hello", "Dockerfile")) as f:
        dockerfile = f.read()
    sha = repo.commit_files({"Dockerfile": dockerfile + "USER 10001:10001\n"})
    project = f"{project_prefix}-nonroot"
    app_start(runtime, repo, project=project, sha=sha)
    try:
        (container,) = replicas_of(runtime, project)
        assert inside(container, "id -u").strip() == "10001"
        assert os.stat(f"/proc/{container.attrs['State']['Pid']}").st_uid not in (0, 10001)
        status, body = get(runtime, project, "/")
        assert status == 200 and "revision 1" in body
    finally:
        runtime.retire_revision(project=project, revision="1")
