"""The local base image ``localhost/switchback/busybox``: FROM scratch + Debian's static busybox.

No public registry is reachable from our hosts, so sample apps build on this image.
Run ``python -m deployments.runtimes.single_host.base_image [ENGINE_URL]`` to make it.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile

import docker
import docker.errors

from deployments.errors import PermanentError

BASE_IMAGE = "localhost/switchback/busybox:latest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

_DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/etc"]
CMD ["/bin/sh"]
"""


def _static_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            with open(path, "rb") as f:
                head = f.read(4096)
            # A dynamically linked busybox would need libc inside an empty image.
            if head.startswith(b"\x7fELF") and b"ld-linux" not in head:
                return path
    raise PermanentError("static busybox not found: install Debian's busybox-static (scripts/install-system-deps.sh)")


def _context_tar(busybox: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_DOCKERFILE))
        tar.add(busybox, arcname="busybox")
    buf.seek(0)
    return buf


def ensure_base_image(client: docker.DockerClient, *, log=None) -> str:
    """Build the base image if it is missing; return its id."""
    try:
        return client.images.get(BASE_IMAGE).id
    except docker.errors.ImageNotFound:
        pass
    context = _context_tar(_static_busybox())
    image_id = ""
    for chunk in client.api.build(
        fileobj=context, custom_context=True, tag=BASE_IMAGE, rm=True, forcerm=True, decode=True
    ):
        if "error" in chunk:
            raise PermanentError(f"base image build failed: {chunk['error'].strip()}")
        if log and chunk.get("stream", "").strip():
            log(chunk["stream"].rstrip())
        image_id = chunk.get("aux", {}).get("ID", image_id)
    return image_id or client.images.get(BASE_IMAGE).id


if __name__ == "__main__":  # pragma: no cover - manual helper
    from deployments.runtimes.single_host.engine_api import connect

    handle = connect(sys.argv[1] if len(sys.argv) > 1 else None)
    print(ensure_base_image(handle.client, log=print))
