"""Sticky canaries and header routing on the single host: what the routing rules cost
HAProxy, how long a weight change takes with the route map, and how closely the share of
clients follows the weights.

Starts its own HAProxy (the platform's router) and a second HAProxy that plays two app
revisions (`http-request return`: fast, so the router is what is measured), drives load with
wrk on 127.0.0.1 only, bounded in time, and prints a table.

    .venv/bin/python bench/sticky_routing.py [--seconds 5] [--clients 2000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import free_port, percentile_nearest  # noqa: E402
from deployments.runtimes.base import STICKY_COOKIE  # noqa: E402
from deployments.runtimes.single_host.haproxy import HAProxyRouter  # noqa: E402
from deployments.runtimes.single_host.haproxy_config import RouteRules, split_weights  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def apps(tmp: str) -> tuple[subprocess.Popen, dict[str, int]]:
    ports = {"1": free_port(), "2": free_port()}
    cfg = ["global", "    maxconn 4096", "defaults", "    mode http", "    timeout client 10s",
           "    timeout connect 5s", "    timeout server 10s"]
    for rev, port in ports.items():
        cfg += [f"frontend app{rev}", f"    bind 127.0.0.1:{port}",
                f'    http-request return status 200 content-type text/plain string "{rev}"']
    path = os.path.join(tmp, "apps.cfg")
    with open(path, "w") as f:
        f.write("\n".join(cfg) + "\n")
    return subprocess.Popen([HAPROXY, "-f", path]), ports


def wrk(bind: str, seconds: int, headers: list[str]) -> dict:
    args = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-H", "Host: shop.localhost"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run([*args, f"http://{bind}/"], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": lat.get("50", "?"), "p99": lat.get("99", "?"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def weights(router: HAProxyRouter, canary: int, preview: str = "2") -> float:
    started = time.perf_counter()
    w = {"r1-0": split_weights(100 - canary, 1)} if canary < 100 else {}
    if canary:
        w["r2-0"] = split_weights(canary, 1)
    router.set_weights("shop", w, preview=preview)
    return (time.perf_counter() - started) * 1000


def client_share(router: HAProxyRouter, clients: list[str]) -> float:
    on_canary = 0
    for c in clients:
        conn = http.client.HTTPConnection(router.bind, timeout=10)
        conn.request("GET", "/", headers={"Host": "shop.localhost", "Cookie": f"{STICKY_COOKIE}={c}"})
        on_canary += conn.getresponse().read() == b"2"
        conn.close()
    return 100 * on_canary / len(clients)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=2000)
    opts = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="sb-sticky-")
    app_proc, ports = apps(tmp)
    router = HAProxyRouter(tmp, bind=f"127.0.0.1:{free_port()}")
    rows = []
    try:
        router.ensure_running()
        router.sync_servers("shop", "1", {"r1-0": ("127.0.0.1", ports["1"])})
        router.sync_servers("shop", "2", {"r2-0": ("127.0.0.1", ports["2"])})
        weights(router, 10)
        cookie = f"Cookie: {STICKY_COOKIE}={uuid.uuid4()}"
        plain = wrk(router.bind, opts.seconds, [])
        rows.append(("no routing rules (balance random)", plain))
        router.ensure_backend("shop", rules=RouteRules(sticky=True, header="X-Canary", cookie="canary"))
        rows.append(("sticky + header + cookie rules, known client", wrk(router.bind, opts.seconds, [cookie])))
        rows.append(("same, new client each request (id made, Set-Cookie)", wrk(router.bind, opts.seconds, [])))
        rows.append(("same, X-Canary: always", wrk(router.bind, opts.seconds, ["X-Canary: always"])))
        router.ensure_backend("shop", rules=None)  # again at the end: the machine's drift shows
        rows.append(("no routing rules again", wrk(router.bind, opts.seconds, [])))

        print(f"\nHAProxy {subprocess.run([HAPROXY, '-v'], capture_output=True, text=True).stdout.split()[2]}, "
              f"wrk -t2 -c32 -d{opts.seconds}s, 127.0.0.1, {os.cpu_count()} CPUs\n")
        print(f"| {'load':<52} | {'req/s':>9} | {'p50':>8} | {'p99':>8} | non-2xx |")
        print(f"|{'-' * 54}|{'-' * 11}|{'-' * 10}|{'-' * 10}|---------|")
        for name, r in rows:
            print(f"| {name:<52} | {r['rps']:>9.0f} | {r['p50']:>8} | {r['p99']:>8} | {r['non2xx']:>7} |")

        # A weight change: Runtime API weights plus the route map (prepare/add/commit).
        timings = {}
        for label, rules in (("without rules", None), ("with sticky + header rules", RouteRules(sticky=True,
                                                                                                header="X-Canary"))):
            router.ensure_backend("shop", rules=rules)
            samples = [weights(router, w) for _ in range(20) for w in (10, 50, 90)]
            timings[label] = (percentile_nearest(samples, 0.5), percentile_nearest(samples, 0.99))
        print("\n| weight change (set_weights, 60 changes) | p50 ms | p99 ms |\n|---|---|---|")
        for label, (p50, p99) in timings.items():
            print(f"| {label} | {p50:.1f} | {p99:.1f} |")

        rng = random.Random(3)
        clients = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(opts.clients)]
        router.ensure_backend("shop", rules=RouteRules(sticky=True))
        print(f"\n| canary weight | share of {opts.clients} sticky clients on the canary |\n|---|---|")
        for w in (1, 10, 25, 50, 90):
            weights(router, w)
            print(f"| {w}% | {client_share(router, clients):.1f}% |")
    finally:
        router.stop()
        app_proc.terminate()
        app_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
