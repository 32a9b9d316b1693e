"""Shared helpers for the install tests: the rendered kustomization, once per session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "platform"
KUSTOMIZATION = PLATFORM / "kubernetes"


@pytest.fixture(scope="session")
def rendered() -> list[dict]:
    """Every object `kubectl kustomize platform/kubernetes` renders (works offline)."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed (`kubectl kustomize` renders the manifests)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(KUSTOMIZATION)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert docs, "the kustomization rendered nothing"
    return docs
