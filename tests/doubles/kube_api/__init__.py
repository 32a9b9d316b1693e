"""A small stateful fake Kubernetes API server over HTTP, for tests.

The real ``kubernetes`` client and ``kubectl`` talk to it.  See ``server.FakeKubeAPI``.
"""

from .server import FakeKubeAPI

__all__ = ["FakeKubeAPI"]
