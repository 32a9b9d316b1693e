"""Where a cold start's time goes: `podman start` of a stopped replica, per create option.

Creates one container per variant the way containers.create_replica does (userns=auto,
cap_drop ALL, no-new-privileges, limits, an isolated bridge network, a loopback-published
port, restart unless-stopped), then N times: stop it, wait, and time the engine API's start,
and start -> first HTTP 200 on the published port (the app's own boot).  Each variant changes
one option.  Prints a markdown table (median and p90, ms) with the load average per row:
the machine is shared, so compare rows measured at similar load.

    .venv/bin/python bench/cold_start_breakdown.py                  # every variant, N=12
    CS_N=15 .venv/bin/python bench/cold_start_breakdown.py platform userns-none

Builds examples/hello (busybox httpd, as bench/rollback_latency.py) as localhost/cs-bench/hello:1,
starts its own `podman system service` on a temporary socket, and removes its containers,
network and image at the end.  Rootful Podman, like the platform.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

IMAGE = "localhost/cs-bench/hello:1"
ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("CS_N", "12"))
client = None  # set in main()


def wait_http(port, deadline=10):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
                data = s.recv(64)
                if b" 200" in data:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("never served")


def make(name, userns="auto", network="cs-net", publish=True, restart=True, log=None, limits=True, extra=None):
    hc = dict(
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        network_mode=network,
    )
    if limits:
        hc.update(mem_limit="512m", memswap_limit="512m", nano_cpus=1_000_000_000, pids_limit=512)
    if publish:
        hc["port_bindings"] = {8000: ("127.0.0.1", None)}
    if restart:
        hc["restart_policy"] = {"Name": "unless-stopped"}
    if log:
        hc["log_config"] = {"Type": log, "Config": {}}
    config = client.api.create_host_config(**hc)
    if userns:
        config["UsernsMode"] = userns
    if extra:
        config.update(extra)
    created = client.api.create_container(IMAGE, name=name, detach=True, environment={"PORT": "8000"},
                                          ports=[8000], host_config=config, labels={"cs.bench": "1"})
    return client.containers.get(created["Id"])


def port_of(k):
    b = (k.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for x in b.get("8000/tcp") or []:
        return int(x["HostPort"])
    return None


def time_variant(label, n=N, cli=False, **kw):
    name = f"cs-bench-{label}"
    subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    k = make(name, **kw)
    starts, serves, totals = [], [], []
    try:
        for i in range(n + 1):
            t0 = time.monotonic()
            if cli:
                subprocess.run(["podman", "start", name], check=True, capture_output=True)
            else:
                k.start()
            t1 = time.monotonic()
            k.reload()
            port = port_of(k) if kw.get("publish", True) else None
            t2 = time.monotonic()
            if port:
                t3 = wait_http(port)
            else:
                t3 = t2
            if i > 0:  # the first start after create is not a cold restart
                starts.append(t1 - t0)
                serves.append(t3 - t2)
                totals.append(t3 - t0)
            k.stop(timeout=5)
            time.sleep(1.5)  # cold: the platform stopped it long before
    finally:
        for _ in range(5):
            try:
                k.remove(force=True)
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                time.sleep(0.5)

    def fmt(xs):
        xs = sorted(xs)
        p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
        return f"{statistics.median(xs) * 1000:6.0f} {p90 * 1000:6.0f}"

    la = open("/proc/loadavg").read().split()[0]
    row = f"| {label:28s} | {fmt(starts)} | {fmt(serves)} | {fmt(totals)} | {la} |"
    print(row, flush=True)
    return row


def build_image(tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from zero_downtime import HTTPD_SERVE

    shutil.copytree(ROOT / "examples" / "hello", tmp / "hello")
    (tmp / "hello" / "app" / "serve").write_text(HTTPD_SERVE)
    subprocess.run(["podman", "build", "-q", "-t", IMAGE, str(tmp / "hello")], check=True, capture_output=True)


VARIANTS = {
    "platform": {},
    "platform-cli": dict(cli=True),
    "userns-none": dict(userns=None),
    "userns-auto-size-65536": dict(userns="auto:size=65536"),
    "userns-auto-size-1024": dict(userns="auto:size=1024"),
    "no-publish": dict(publish=False),
    "net-none-no-publish": dict(network="none", publish=False),
    "no-restart": dict(restart=False),
    "no-limits": dict(limits=False),
    "log-none": dict(log="none"),
    "all-off": dict(userns=None, network="none", publish=False, restart=False, limits=False),
}


def main() -> int:
    global client
    tmp = Path(tempfile.mkdtemp(prefix="sb-csb-"))
    sock = tmp / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        client = docker.DockerClient(base_url=f"unix://{sock}", timeout=60)
        build_image(tmp)
        client.networks.create("cs-net", driver="bridge", options={"isolate": "true"})
        print("| variant | start med p90 (ms) | start->200 med p90 | total med p90 | load |")
        print("|---|---|---|---|---|")
        for v in sys.argv[1:] or list(VARIANTS):
            try:
                time_variant(v, **VARIANTS[v])
            except Exception as exc:  # noqa: BLE001 - report the variant, go on
                print(f"| {v} | error {exc} |", flush=True)
    finally:
        subprocess.run("podman ps -aq --filter label=cs.bench=1 | xargs -r podman rm -f -t 0",
                       shell=True, capture_output=True)
        subprocess.run(["podman", "network", "rm", "cs-net"], capture_output=True)
        subprocess.run(["podman", "rmi", IMAGE], capture_output=True)
        service.terminate()
        service.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
