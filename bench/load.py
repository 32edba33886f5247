"""What security monitoring costs per request: latency with and without it, at the same load.

``.venv/bin/python bench/load.py`` (bounded: ``--requests`` per run, ``--max-seconds`` overall)
starts the real API server in a separate process on a loopback port — twice, over two identical
instances: once with monitoring on (the defaults: every request counted in the shared rate-limit
table, blocks and suspensions checked, the detection rules reading the journal every second,
metrics recorded), once with ``PACTVAULT_MONITOR=off``. Then:

1. **calibration**: ``--clients`` closed-loop clients against the unmonitored server for a few
   seconds measure its throughput X;
2. **measurement**: each server gets the same open-loop load — requests *scheduled* at
   ``--load`` × X per second (default 50 %), a mix of signed-in API calls (a contract's metadata,
   a page of contracts, a document download: audited, so the journal grows and the rules have
   work) — and the latency of every request is recorded from its scheduled time (so a server
   that falls behind is charged for it). Runs alternate off/on in short chunks, ``--rounds``
   times, so changes in the machine's load hit both alike.

It prints throughput, latency percentiles of each configuration and the overhead of monitoring
(target: under 10 %). Rate limits are raised for the run (``PACTVAULT_RATE_LIMITS``) so that no
request is refused — the counting work is the same — and the bench organisation's
``mass-download`` threshold is raised so its own downloads do not get it suspended (the rule is
still evaluated on every download).

Everything stays on 127.0.0.1; nothing else is contacted. Data lives in a temporary directory
that is removed afterwards. Note which interpreter ran it (printed): see DESIGN.md.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import platform as host_platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
PASSWORD = "violet-anchor-meadow-42-quartz"
RATE_LIMITS = ("api.ip=1000000/60", "api.subject=1000000/60")


@dataclass
class Instance:
    home: Path
    session: str
    contracts: list[str]


def seed(home: Path, contracts: int) -> Instance:
    """An instance with one organisation, its signed-in owner and some contracts."""
    from pactvault.audit.journal import Actor
    from pactvault.config import Settings
    from pactvault.contracts.service import SignerSpec
    from pactvault.demo import sample_pdf
    from pactvault.identity.passwords import HashParameters, PasswordHasher
    from pactvault.identity.people import NewAccount
    from pactvault.monitor.rules.settings import RuleChange
    from pactvault.notify import MemoryMailer
    from pactvault.platform import Platform

    # Cheap password hashing: sign-ins are not what is measured.
    fast = HashParameters(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    platform, _ = Platform.initialise(
        Settings(home=home), mailer=MemoryMailer(), password_hasher=PasswordHasher(fast)
    )
    try:
        system = Actor(type="system", id="bench")
        org = platform.people.create_organisation(
            system, "Bench", "bench@load.test", NewAccount("Bench", PASSWORD)
        ).org_id
        ids = [
            platform.contracts.create(
                system,
                org,
                title=f"Load {i}",
                pdf=sample_pdf(),
                signers=[SignerSpec(name="P", email="p@load.test")],
            ).id
            for i in range(contracts)
        ]
        platform.monitor.rules.operator_change(
            Actor(type="operator-cli", id="bench"),
            "mass-download",
            RuleChange(threshold=1_000_000),
        )
        issued = platform.login.login("bench@load.test", PASSWORD, Actor(type="anonymous", ip=HOST))
        return Instance(home, issued.token, ids)
    finally:
        platform.close()


def _serve(home: str, monitor: bool, port: int) -> None:
    """The server process: the real application, as ``pactvault run`` serves it."""
    os.environ.update(
        PACTVAULT_HOME=home,
        PACTVAULT_MONITOR="on" if monitor else "off",
        PACTVAULT_RATE_LIMITS=",".join(RATE_LIMITS),
    )
    import logging

    import uvicorn

    from pactvault.api.app import create_app
    from pactvault.config import Settings
    from pactvault.platform import Platform

    logging.getLogger("pactvault").setLevel(logging.WARNING)
    platform = Platform.open(Settings.from_env())
    uvicorn.run(
        create_app(platform),
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, instance: Instance, monitor: bool) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(
            target=_serve, args=(str(instance.home), monitor, self.port), daemon=True
        )

    def __enter__(self) -> Server:
        self.process.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)


def requests_of(instance: Instance) -> itertools.cycle[str]:
    """The mix: metadata, a page, a download (audited: the rules get work), metadata again."""
    paths = []
    for contract_id in instance.contracts:
        paths += [
            f"/api/v1/contracts/{contract_id}",
            "/api/v1/contracts?limit=20",
            f"/api/v1/contracts/{contract_id}/document",
            f"/api/v1/contracts/{contract_id}",
        ]
    return itertools.cycle(paths)


def calibrate(server: Server, instance: Instance, clients: int, seconds: float) -> float:
    """Closed loop: ``clients`` back-to-back callers; returns requests per second."""
    stop = time.monotonic() + seconds
    done = [0] * clients

    def work(i: int) -> None:
        paths = requests_of(instance)
        with httpx.Client(base_url=server.base, cookies={"pv_session": instance.session}) as c:
            while time.monotonic() < stop:
                answer = c.get(next(paths))
                answer.raise_for_status()
                done[i] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - began)


def open_loop(
    server: Server, instance: Instance, rate: float, count: int, clients: int
) -> list[float]:
    """``count`` requests scheduled at ``rate`` per second; latency from each schedule time."""
    paths = requests_of(instance)
    local = threading.local()
    began = time.monotonic() + 0.2
    statuses: list[int] = []

    def one(n: int, path: str) -> float:
        due = began + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if not hasattr(local, "client"):
            local.client = httpx.Client(
                base_url=server.base, cookies={"pv_session": instance.session}
            )
        answer = local.client.get(path)
        statuses.append(answer.status_code)
        return time.monotonic() - due

    with ThreadPoolExecutor(max_workers=clients * 2) as pool:
        latencies = list(pool.map(one, range(count), (next(paths) for _ in range(count))))
    refused = [s for s in statuses if s != 200]
    if refused:
        raise RuntimeError(f"{len(refused)} request(s) were not answered 200: {set(refused)}")
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def describe(name: str, latencies: list[float]) -> str:
    ms = [v * 1000 for v in latencies]
    return (
        f"{name:<15} n={len(ms):5d}  mean {statistics.fmean(ms):7.2f} ms  "
        f"p50 {percentile(ms, 50):7.2f}  p95 {percentile(ms, 95):7.2f}  "
        f"p99 {percentile(ms, 99):7.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1200, help="per measured run (max 20000)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (max 5)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (max 32)")
    parser.add_argument("--load", type=float, default=0.5, help="fraction of measured throughput")
    parser.add_argument("--contracts", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=300, help="stop rounds after this")
    args = parser.parse_args()
    requests = max(100, min(args.requests, 20_000))
    rounds = max(1, min(args.rounds, 5))
    clients = max(1, min(args.clients, 32))
    load = max(0.1, min(args.load, 0.95))
    deadline = time.monotonic() + args.max_seconds

    print(f"python {sys.version.split()[0]} ({sys.executable}) on {host_platform.platform()}")
    print(
        f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())} "
        f"on {os.cpu_count()} CPU(s)"
    )
    with tempfile.TemporaryDirectory(prefix="pactvault-load-") as tmp:
        on = seed(Path(tmp) / "on", args.contracts)
        off = seed(Path(tmp) / "off", args.contracts)
        with Server(off, monitor=False) as plain, Server(on, monitor=True) as guarded:
            calibrate(plain, off, clients, 1.0)  # warm up both (imports, caches, pools)
            calibrate(guarded, on, clients, 1.0)
            throughput = calibrate(plain, off, clients, 5.0)
            monitored = calibrate(guarded, on, clients, 5.0)
            rate = throughput * load
            print(
                f"throughput (closed loop, {clients} clients): {throughput:.0f} req/s without "
                f"monitoring, {monitored:.0f} req/s with it"
            )
            print(
                f"measuring latency at {rate:.0f} req/s ({load:.0%} of {throughput:.0f}), "
                f"{requests} requests per run, {rounds} round(s)"
            )
            results: dict[str, list[float]] = {"without": [], "with": []}
            # Short alternating chunks, so drift in the machine's load hits both alike.
            chunk = max(50, min(200, requests // 4))
            for n in range(rounds):
                if n and time.monotonic() > deadline:
                    print("time budget reached; stopping early")
                    break
                for _ in range(max(1, requests // chunk)):
                    results["without"] += open_loop(plain, off, rate, chunk, clients)
                    results["with"] += open_loop(guarded, on, rate, chunk, clients)
    print(describe("without monitor", results["without"]))
    print(describe("with monitor", results["with"]))
    base = statistics.fmean(results["without"])
    mean_overhead = statistics.fmean(results["with"]) / base - 1
    p50_overhead = percentile(results["with"], 50) / percentile(results["without"], 50) - 1
    verdict = "OK" if mean_overhead < 0.10 else "OVER TARGET"
    print(
        f"overhead: mean {mean_overhead:+.1%}, median {p50_overhead:+.1%} (target < 10%): {verdict}"
    )
    return 0 if mean_overhead < 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
