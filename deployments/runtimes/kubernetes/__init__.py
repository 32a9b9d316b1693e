"""Kubernetes runtime: a Deployment per revision, a stable Service, weighted routers."""

from .client import KubeClient
from .manifests import ProjectOptions, render_manifests
from .runtime import KubernetesRuntime

__all__ = ["KubeClient", "KubernetesRuntime", "ProjectOptions", "render_manifests"]
