"""Image names on the single host: one namespace per installation, never pulled."""

from __future__ import annotations

import pytest

from deployments.runtimes.single_host.images import image_tag
from deployments.runtimes.single_host.runtime import pullable


def test_a_build_is_named_per_installation():
    assert image_tag("Hello", "ABC123", instance="0a1b2c3d") == "sb-0a1b2c3d/hello:abc123"


@pytest.mark.parametrize("ref,expected", [
    ("sb-0a1b2c3d/hello:" + "a" * 40, False),  # built here, by any installation: never pulled
    ("sb-local/hello@sha256:" + "b" * 64, False),
    ("hello:abc", False),
    ("localhost/switchback/busybox", False),
    ("127.0.0.1:5000/hello:abc", True),
    ("registry.example.com/team/app:1", True),
    ("team/app:1", True),  # Docker Hub, allowed by an operator's template
])
def test_only_registry_images_are_pulled(ref, expected):
    assert pullable(ref) is expected
