"""Replica containers: labels, names, creation, host ports, removal."""

from __future__ import annotations

import contextlib

import docker
import docker.errors
import requests.exceptions

from deployments.errors import PermanentError, TransientError

LABEL_MANAGED = "switchback.managed"
LABEL_PROJECT = "switchback.project"
LABEL_REVISION = "switchback.revision"
LABEL_REPLICA = "switchback.replica"
LABEL_REPLICAS = "switchback.replicas"
LABEL_PORT = "switchback.port"
LABEL_PROBES = "switchback.probes"
LABEL_SHA = "switchback.sha"

ENGINE_ERRORS = (docker.errors.APIError, requests.exceptions.RequestException)


def container_name(project: str, revision: str, index: int) -> str:
    return f"sb-{project}-{revision}-{index}"


def list_replicas(client: docker.DockerClient, project: str | None = None, revision: str | None = None) -> list:
    """Every managed container (running or not), optionally of one project/revision."""
    labels = [f"{LABEL_MANAGED}=1"]
    if project:
        labels.append(f"{LABEL_PROJECT}={project}")
    if revision:
        labels.append(f"{LABEL_REVISION}={revision}")
    try:
        return client.containers.list(all=True, filters={"label": labels})
    except ENGINE_ERRORS as exc:
        raise TransientError(f"container engine error listing containers: {exc}") from exc


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
):
    try:
        container = client.containers.run(
            image,
            name=name,
            detach=True,
            labels=labels,
            environment=env,
            # Publish to a random loopback port: only HAProxy and our probes reach it.
            ports={f"{port}/tcp": (publish_host, None)},
            network=network,
        )
    except docker.errors.ImageNotFound as exc:
        raise PermanentError(f"image not found: {image}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # another worker created it meanwhile: use theirs
            return client.containers.get(name)
        if exc.status_code == 404 and "image" in str(exc).lower():
            raise PermanentError(f"image not found: {image}") from exc
        raise TransientError(f"could not start {name}: {exc.explanation or exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"container engine error starting {name}: {exc}") from exc
    container.reload()  # the published port is only known after start
    return container


def remove_container(container, *, stop_timeout: int = 5) -> None:
    """Stop gracefully (SIGTERM, then SIGKILL after stop_timeout) and remove."""
    with contextlib.suppress(docker.errors.NotFound):
        try:
            if container.status == "running":
                container.stop(timeout=stop_timeout)
            container.remove(force=True)
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


def start_existing(container):
    """Start a stopped replica as it was created (image, env, labels, published port).

    Returns the container reloaded (its published port), or None when it cannot start
    (then the caller removes it and creates a fresh one).
    """
    try:
        container.start()
        container.reload()
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError:
        return None
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"container engine error starting {container.name}: {exc}") from exc
    return container if container.status == "running" else None
