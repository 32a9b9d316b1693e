"""Replica containers: labels, names, creation, host ports, removal."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import time
from dataclasses import dataclass

import docker
import docker.errors
import requests.exceptions

from deployments.errors import PermanentError, TransientError

# Where replicas' published loopback ports come from (SWITCHBACK_PUBLISH_PORTS).
PUBLISH_PORTS_DEFAULT = "20000-29999"

LABEL_MANAGED = "switchback.managed"
# The installation that made the container: several installations may share one engine,
# and each only ever lists, retires or stops its own (DESIGN: the data plane).
LABEL_INSTANCE = "switchback.instance"
LABEL_PROJECT = "switchback.project"
LABEL_REVISION = "switchback.revision"
LABEL_REPLICA = "switchback.replica"
LABEL_REPLICAS = "switchback.replicas"
LABEL_PORT = "switchback.port"
LABEL_PROBES = "switchback.probes"
LABEL_SHA = "switchback.sha"

ENGINE_ERRORS = (docker.errors.APIError, requests.exceptions.RequestException)


# Restarted by the engine itself when it exits, and after the engine restarts, unless
# we stopped it: the apps serve on while the platform is down.
RESTART_POLICY = {"Name": "unless-stopped"}


def container_name(project: str, revision: str, index: int, instance: str = "") -> str:
    return f"sb-{instance}-{project}-{revision}-{index}" if instance else f"sb-{project}-{revision}-{index}"


def list_replicas(
    client: docker.DockerClient, project: str | None = None, revision: str | None = None, *, instance: str | None = None
) -> list:
    """Every managed container (running or not) of one installation (every installation's
    when ``instance`` is None, for cleanups), optionally of one project/revision."""
    labels = [f"{LABEL_MANAGED}=1"]
    if instance is not None:
        labels.append(f"{LABEL_INSTANCE}={instance}")
    if project:
        labels.append(f"{LABEL_PROJECT}={project}")
    if revision:
        labels.append(f"{LABEL_REVISION}={revision}")
    for attempt in range(3):
        try:
            return client.containers.list(all=True, filters={"label": labels})
        except docker.errors.NotFound:
            # The SDK inspects each listed container; one removed in between (a retire, a
            # replaced replica) answers 404: list again.
            if attempt == 2:
                raise TransientError("containers kept disappearing while being listed") from None
        except ENGINE_ERRORS as exc:
            raise TransientError(f"container engine error listing containers: {exc}") from exc
    return []


def replica_index(container) -> int:
    try:
        return int(container.labels.get(LABEL_REPLICA, "-1"))
    except ValueError:
        return -1


def host_port(container, port: int) -> int | None:
    """The 127.0.0.1 port published for the container's ``port``, if any."""
    bindings = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def exit_summary(container, tail_lines: int = 5) -> str:
    state = container.attrs.get("State") or {}
    code = state.get("ExitCode")
    try:
        logs = container.logs(tail=tail_lines).decode(errors="replace").strip()
    except ENGINE_ERRORS:
        logs = ""
    text = f"exited with code {code}" if state.get("Status") == "exited" else state.get("Status", "not running")
    if state.get("OOMKilled"):
        text += " (out of memory)"
    return f"{text}: {logs.splitlines()[-1]}" if logs else text


@dataclass(frozen=True)
class ContainerLimits:
    """What one replica may use and do (HostConfig fields of the Docker Engine API)."""

    memory_mb: int = 512
    cpus: float = 1.0
    pids_limit: int = 512
    # "auto": Podman maps root inside to an unused unprivileged host range (userns=auto);
    # "" leaves the engine's default (Docker: the daemon's userns-remap).
    userns: str = "auto"

    def host_config(self, client: docker.DockerClient, **options) -> dict:
        config = client.api.create_host_config(
            mem_limit=f"{self.memory_mb}m",
            memswap_limit=f"{self.memory_mb}m",  # no swap on top of the memory limit
            nano_cpus=int(self.cpus * 1_000_000_000),
            pids_limit=self.pids_limit,
            # Apps listen on $PORT (above 1024) as any user: they need no capability, and
            # setuid binaries inside cannot gain privileges either.
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            **options,
        )
        if self.userns:
            # docker-py only accepts "host" here; the API itself takes Podman's modes.
            config["UsernsMode"] = self.userns
        return config


def create_replica(
    client: docker.DockerClient,
    *,
    image: str,
    name: str,
    labels: dict,
    env: dict,
    port: int,
    publish_host: str,
    network: str | None,
    limits: ContainerLimits | None = None,
    publish_ports: tuple[int, int] | None = None,
):
    limits = limits or ContainerLimits()
    host_port = publish_port_pick(publish_host, publish_ports) if publish_ports else None
    try:
        created = client.api.create_container(
            image,
            name=name,
            detach=True,
            labels=labels,
            environment=env,
            ports=[port],
            host_config=limits.host_config(
                client,
                # Publish to a free loopback port: only HAProxy and our probes reach it.
                port_bindings={port: (publish_host, host_port)},
                network_mode=network,
                # The app outlives the platform: the engine restarts it, not our workers.
                restart_policy=RESTART_POLICY,
            ),
        )
        client.api.start(created["Id"])
    except docker.errors.ImageNotFound as exc:
        raise PermanentError(f"image not found: {image}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # another worker created it meanwhile: use theirs
            return client.containers.get(name)
        if exc.status_code == 404 and "network" in str(exc.explanation or "").lower():
            # The project's network went with its last replica meanwhile: the retry makes it again.
            raise TransientError(f"could not start {name}: {exc.explanation}") from exc
        if exc.status_code == 404 and "image" in str(exc).lower():
            raise PermanentError(f"image not found: {image}") from exc
        if limits.userns and any(word in str(exc) for word in ("subuid", "available IDs")):
            raise PermanentError(
                f"could not start {name}: the container engine has no uid range for user namespaces "
                "(run scripts/install-system-deps.sh, which adds the \"containers\" range to /etc/subuid "
                "and /etc/subgid)") from exc
        raise TransientError(f"could not start {name}: {exc.explanation or exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"container engine error starting {name}: {exc}") from exc
    # The published port is only known after start.
    return client.containers.get(created["Id"])


def publish_ports_parse(value: str) -> tuple[int, int] | None:
    """"20000-29999" -> (20000, 29999); "" -> None (the engine picks, from the ephemeral range)."""
    if not value.strip():
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", value)
    if not match or not (1024 <= int(match[1]) < int(match[2]) <= 65535):
        raise ValueError(f"SWITCHBACK_PUBLISH_PORTS must be 'low-high' within 1024-65535, got {value!r}")
    return int(match[1]), int(match[2])


def publish_port_pick(host: str, ports: tuple[int, int], *, tries: int = 64) -> int:
    """A free port in the range, for a replica's published port.

    Outside the kernel's ephemeral range on purpose: the engine's port forwarding (CNI
    DNAT rules) can outlive a removed container, and a port the kernel later hands to any
    program binding port 0 (or the engine's own random pick) would then be unreachable."""
    low, high = ports
    for _ in range(tries):
        candidate = random.randint(low, high)
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
        return candidate
    raise TransientError(f"no free port to publish on {host} in {low}-{high}")


def remove_container(container, *, stop_timeout: int = 5) -> None:
    """Stop gracefully (SIGTERM, then SIGKILL after stop_timeout) and remove."""
    with contextlib.suppress(docker.errors.NotFound):
        try:
            if container.status == "running":
                container.stop(timeout=stop_timeout)
            for attempt in range(5):
                try:
                    container.remove(force=True)
                    break
                except docker.errors.APIError:
                    # Podman 4.3 with a user namespace sometimes reports "userdata/shm: device
                    # or resource busy" while its own cleanup unmounts it, and removes the
                    # container all the same: look again, and try again if it is still there.
                    if attempt == 4:
                        raise
                    time.sleep(0.2 * (attempt + 1))
                    container.reload()  # NotFound: it is gone, which is what we wanted
        except docker.errors.NotFound:
            raise
        except ENGINE_ERRORS as exc:
            raise TransientError(f"could not remove {container.name}: {exc}") from exc


def stop_container(container, *, stop_timeout: int = 5) -> None:
    """Stop gracefully and keep the container: a cold revision starts it again later."""
    with contextlib.suppress(docker.errors.NotFound):
        try:
            if container.status == "running":
                container.stop(timeout=stop_timeout)
        except docker.errors.NotFound:
            raise
        except ENGINE_ERRORS as exc:
            raise TransientError(f"could not stop {container.name}: {exc}") from exc


def start_existing(container, *, settle_seconds: float = 2.0):
    """Start a stopped replica as it was created (image, env, labels, published port).

    Returns the container reloaded (its published port), or None when it cannot start
    (then the caller removes it and creates a fresh one).

    A replica that just died is still being cleaned up by the engine for a moment (its
    conmon runs `podman container cleanup`, which releases its network address); a start
    in that moment fails with CNI's "duplicate allocation" for the container's own address.
    That start is retried every 0.1 s for up to `settle_seconds`: it is the same container.
    """
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            container.start()
            container.reload()
            break
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            if "duplicate allocation" not in str(exc) or time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"container engine error starting {container.name}: {exc}") from exc
    return container if container.status == "running" else None
