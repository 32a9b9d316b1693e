"""Webhook intake under load: signed push deliveries against gunicorn + PostgreSQL + Redis.

Open-loop: deliveries are sent on a fixed schedule (default 100/s) whatever the answers
take, so queueing shows up in the latency instead of silently lowering the rate.  Every
delivery is a distinct commit to the production branch, so each one writes a delivery row,
a deployment, its first event and an audit entry, and publishes a task to Redis.

    .venv/bin/python bench/webhook_ingest.py --rate 100 --seconds 30

Prints a table; copy it with the date and machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from common import free_port  # bench/common.py (this script's folder is on sys.path)
from common import percentile_nearest as percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from webhooks.github import sign  # noqa: E402

SECRET = "bench-secret"


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def build_request(i: int, port: int) -> bytes:
    """One distinct, signed push delivery as raw HTTP/1.1 bytes (built before the clock starts)."""
    body = json.dumps({
        "ref": "refs/heads/main", "after": (uuid.uuid4().hex + uuid.uuid4().hex)[:40],
        "repository": {"full_name": "bench/app"},
        "head_commit": {"message": f"commit {i}", "author": {"username": "bench"}},
    }).encode()
    head = (f"POST /webhooks/github/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"User-Agent: GitHub-Hookshot/bench\r\nConnection: close\r\nX-GitHub-Event: push\r\n"
            f"X-GitHub-Delivery: {uuid.uuid4()}\r\n"
            f"X-Hub-Signature-256: {sign(secret=SECRET, body=body)}\r\n\r\n").encode()
    return head + body


async def fire(raw_requests: list[bytes], *, rate: float, connections: int) -> list[tuple[float, int, float]]:
    """Send on a fixed schedule over keep-alive connections.

    Latency is measured from each request's *scheduled* time, so a slow server cannot
    hide queueing by slowing the client down (no coordinated omission).
    """
    port = int(raw_requests[0].split(b"Host: 127.0.0.1:")[1].split(b"\r\n")[0])
    queue: asyncio.Queue = asyncio.Queue()
    results: list[tuple[float, int, float]] = []  # (latency s, status, scheduled at s)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def connection() -> None:
        # One TCP connection per delivery, as GitHub sends them.
        while True:
            item = await queue.get()
            if item is None:
                return
            scheduled, raw = item
            writer = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(raw)
                status_line = await reader.readline()
                status = int(status_line.split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                status = 0
            finally:
                if writer is not None:
                    writer.close()
            results.append((loop.time() - scheduled, status, scheduled - start))

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    for i, raw in enumerate(raw_requests):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((scheduled, raw))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=5, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (1: sync workers)")
    parser.add_argument("--connections", type=int, default=16, help="client keep-alive connections")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/switchback_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--timeline", action="store_true", help="also print each second's p50, p99 and max")
    args = parser.parse_args()

    db_name = args.database_url.rsplit("/", 1)[1]
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", db_name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db_name], check=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production", "DATABASE_URL": args.database_url,
           "REDIS_URL": args.redis_url, "SECRET_KEY": "bench-only",
           "SWITCHBACK_ENCRYPTION_KEYS": "YmVuY2gtb25seS1ub3QtYS1yZWFsLWtleS0wMDAwMDA=", "ALLOWED_HOSTS": "127.0.0.1",
           "LOG_LEVEL": "WARNING", "SECURE_COOKIES": "0",
           "SECURE_SSL_REDIRECT": "0"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "shell", "-c",
                    "from deployments.services import project_create; "
                    f"project_create(actor=None, slug='bench', repository='bench/app', webhook_secret='{SECRET}')"],
                   cwd=ROOT, env=env, check=True)
    subprocess.run(["redis-cli", "-u", args.redis_url, "flushdb"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn",
                               "config.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", str(args.workers), "--threads", str(args.threads),
                               "--log-level", "warning"],
                              cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        requests_raw = [build_request(i, port) for i in range(50 + int(args.rate * args.seconds))]
        warmup, measured = requests_raw[:50], requests_raw[50:]
        asyncio.run(fire(warmup, rate=200, connections=args.connections))
        # A running platform's tables have planner statistics (autovacuum analyses them
        # within a minute); a database created seconds ago has none, and the planner
        # then picks the wrong index for the supersession.  Analyse after the warm-up.
        subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db_name, "-c", "VACUUM ANALYZE"],
                       check=True)
        # The client's own garbage collector must not stall it mid-run (its pauses would
        # count as server latency): freeze what exists and collect after the run.
        gc.collect()
        gc.freeze()
        gc.disable()
        began = time.perf_counter()
        cpu_before = cpu_times()
        results = asyncio.run(fire(measured, rate=args.rate, connections=args.connections))
        elapsed = time.perf_counter() - began
        cpu_after = cpu_times()
        gc.enable()
        total = len(measured)
        latencies = [r[0] * 1000 for r in results]
        statuses = [r[1] for r in results]
        queued = int(subprocess.run(["redis-cli", "-u", args.redis_url, "llen", "celery"],
                                    capture_output=True, text=True).stdout.strip() or 0)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)

    ok = statuses.count(202)
    rows = [
        ("machine", f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"),
        ("server", f"gunicorn, {args.workers} workers x {args.threads} thread(s); PostgreSQL + Redis on loopback"),
        ("client", f"asyncio, one connection per delivery, up to {args.connections} in flight"),
        ("offered rate", f"{args.rate:.0f} deliveries/s for {args.seconds:.0f} s ({total} deliveries)"),
        ("achieved throughput", f"{len(results) / elapsed:.1f} deliveries/s"),
        ("202 accepted", f"{ok} / {total}"),
        ("other statuses", str({s: statuses.count(s) for s in set(statuses) if s != 202} or "none")),
        ("tasks published to Redis", str(queued)),
        ("machine CPU busy during the run",
         f"{100 * (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1]):.0f}% of "
         f"{os.cpu_count()} cores (server, PostgreSQL, Redis and this client together)"),
        ("latency p50", f"{statistics.median(latencies):.1f} ms"),
        ("latency p90", f"{percentile(latencies, 90):.1f} ms"),
        ("latency p99", f"{percentile(latencies, 99):.1f} ms"),
        ("latency max", f"{max(latencies):.1f} ms"),
    ]
    if args.timeline:
        by_second = collections.defaultdict(list)
        for latency, _status, at in results:
            by_second[int(at)].append(latency * 1000)
        print("| second | deliveries | p50 ms | p99 ms | max ms | over 50 ms |")  # noqa: T201
        print("|---:|---:|---:|---:|---:|---:|")  # noqa: T201
        for second in sorted(by_second):
            values = by_second[second]
            print(f"| {second} | {len(values)} | {statistics.median(values):.1f} | "  # noqa: T201
                  f"{percentile(values, 99):.1f} | {max(values):.1f} | {sum(v > 50 for v in values)} |")
        print()  # noqa: T201
    width = max(len(r[0]) for r in rows)
    print(f"| {'webhook_ingest'.ljust(width)} | result |")  # noqa: T201
    print(f"|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
