"""Configuration rendering (pure functions): backends, servers, routing map, weights."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deployments.runtimes.single_host.haproxy_config import (
    DRAIN,
    MAINT,
    READY,
    Paths,
    ProjectState,
    RouterState,
    ServerState,
    render_config,
    render_hosts_map,
    server_name,
    split_weights,
)


def _paths(tmp_path) -> Paths:
    return Paths(
        config=str(tmp_path / "haproxy.cfg"),
        hosts_map=str(tmp_path / "hosts.map"),
        admin_socket=str(tmp_path / "admin.sock"),
        master_socket=str(tmp_path / "master.sock"),
        pidfile=str(tmp_path / "haproxy.pid"),
    )


def _state() -> RouterState:
    return RouterState(
        projects={
            "hello": ProjectState(
                servers={
                    "r1-0": ServerState("127.0.0.1", 40001, "1", weight=256, state=READY),
                    "r2-0": ServerState("127.0.0.1", 40002, "2", weight=0, state=DRAIN),
                    "r3-0": ServerState("127.0.0.1", 40003, "3", weight=0, state=MAINT),
                }
            ),
            "empty": ProjectState(),
        }
    )


def test_config_has_a_backend_per_project_with_weights_and_states(tmp_path):
    text = render_config(_state(), bind="127.0.0.1:8080", paths=_paths(tmp_path))
    assert "backend be_hello\n" in text and "backend be_empty\n" in text
    assert "    server r1-0 127.0.0.1:40001 weight 256\n" in text
    assert "    server r2-0 127.0.0.1:40002 weight 0\n" in text  # drained: no new requests
    assert "    server r3-0 127.0.0.1:40003 weight 0 disabled\n" in text  # maintenance
    assert "bind 127.0.0.1:8080" in text
    assert f"stats socket {tmp_path}/admin.sock mode 600 level admin" in text
    assert "master-worker" in text
    assert "http-request return status 404" in text  # unknown host


def test_hosts_map_routes_project_subdomains(tmp_path):
    assert render_hosts_map(_state(), "apps.example.com") == (
        "empty.apps.example.com be_empty\nhello.apps.example.com be_hello\n"
    )
    assert render_hosts_map(RouterState(), "localhost") == ""


def test_state_round_trips_through_json():
    state = _state()
    assert RouterState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    ("percent", "replicas", "weight"),
    [
        (100, 1, 256),
        (100, 2, 128),
        (50, 1, 128),
        (10, 1, 26),
        (1, 3, 1),
        (0, 2, 0),
        (30, 0, 0),
    ],
)
def test_split_weights(percent, replicas, weight):
    assert split_weights(percent, replicas) == weight


def test_server_names():
    assert server_name("7", 0) == "r7-0"


@pytest.mark.haproxy
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_generated_config_is_valid_for_haproxy(tmp_path):
    paths = _paths(tmp_path)
    (tmp_path / "hosts.map").write_text(render_hosts_map(_state(), "localhost"))
    (tmp_path / "haproxy.cfg").write_text(render_config(_state(), bind="127.0.0.1:18999", paths=paths))
    check = subprocess.run(["haproxy", "-c", "-f", paths.config], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_backends_check_servers_on_the_readiness_path(tmp_path):
    from deployments.runtimes.single_host.haproxy_config import HealthCheck

    state = _state()
    state.projects["hello"].check = HealthCheck(path="/readyz", inter_ms=500, fall=3, rise=2, timeout_ms=800)
    text = render_config(state, bind="127.0.0.1:8080", paths=_paths(tmp_path), instance="ab12")
    assert "backend be_ab12_hello\n" in text
    assert "    option httpchk\n    http-check send meth GET uri /readyz\n" in text
    assert "    server r1-0 127.0.0.1:40001 weight 256 check inter 500 fall 3 rise 2\n" in text
    assert "    timeout check 800ms\n" in text
    assert "backend be_ab12_empty\n    balance random(1)\n" in text  # no probe: no check
    assert RouterState.from_json(state.to_json()) == state  # survives the state file


@pytest.mark.parametrize("path", ["readyz", "/ready z", "/r\nbackend x", "/a#b", "/a'b", '/a"b', "/a\\b",
                                  "/" + "a" * 300])
def test_health_check_refuses_paths_haproxy_would_read_as_config(path):
    from deployments.runtimes.single_host.haproxy_config import HealthCheck

    with pytest.raises(ValueError):
        HealthCheck(path=path)
