"""One container network per project, isolated from every other project's.

HAProxy and the probes reach replicas through ports published on the host's loopback, so
replicas need no route to each other: each project's replicas join the project's own
bridge network, and the networks are created isolated from one another.

- Podman (CNI backend) honours the ``isolate`` option: its firewall plugin then drops
  traffic from one isolated bridge to another (``ingressPolicy: same-bridge``, the
  CNI-ISOLATION-STAGE-1/2 chains); see podman-network-create(1).
- Podman's Docker-compatible API makes networks isolated even without the option; we
  pass it anyway so the intent does not hang on that default.
- Docker isolates user-defined bridge networks from each other by default (the
  DOCKER-ISOLATION-STAGE chains); that it accepts the unknown option is not tested here
  (no Docker engine on these machines).

Every name comes from ``network_name``, which includes the installation's id.
"""

from __future__ import annotations

import contextlib

import docker
import docker.errors
import requests.exceptions

from deployments.errors import TransientError

LABEL_MANAGED = "switchback.managed"
LABEL_PROJECT = "switchback.project"
# Podman's option for "no traffic to or from other isolated networks".
ISOLATE_OPTIONS = {"isolate": "true"}

_ENGINE_ERRORS = (docker.errors.APIError, requests.exceptions.RequestException)


def _exact(client: docker.DockerClient, name: str) -> list:
    # The engines' name filter matches substrings: sb-net-shop would find sb-net-shop-eu.
    return [n for n in client.networks.list(names=[name]) if n.name == name]


def network_name(project: str, instance: str = "") -> str:
    """The engine network of a project's replicas (the one place that names it); it carries
    the installation's id so two installations on one engine never share one."""
    return f"sb-net-{instance}-{project}" if instance else f"sb-net-{project}"


def network_ensure(client: docker.DockerClient, *, project: str, instance: str = "") -> str:
    """Create the project's isolated network unless it exists; return its name.

    Idempotent and safe under concurrent workers: a create that loses the race (409) uses
    the network the other one made.
    """
    name = network_name(project, instance)
    try:
        if _exact(client, name):
            return name
        client.networks.create(
            name,
            driver="bridge",
            options=ISOLATE_OPTIONS,
            labels={LABEL_MANAGED: "1", LABEL_PROJECT: project},
        )
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            return name
        raise TransientError(f"could not create network {name}: {exc.explanation or exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"container engine error creating network {name}: {exc}") from exc
    return name


def network_remove(client: docker.DockerClient, *, project: str, instance: str = "") -> None:
    """Remove the project's network; one still in use (a replica started meanwhile) stays."""
    name = network_name(project, instance)
    with contextlib.suppress(*_ENGINE_ERRORS):
        for network in _exact(client, name):
            network.remove()
