"""CPU instructions per request, counted by Valgrind: what timing cannot see on a noisy
machine.

The apps of ``requests_bench.py``, on SQLite or the server ``--url`` names (only this
process's instructions are counted, not the server's). For each hash seed, each app runs in a
process of its own under ``valgrind --tool=callgrind`` twice: warmed up and then sent
``--requests`` requests, and warmed up only; the difference, divided by the requests,
is the app's instructions per request. The count is exact and the same on every
repetition, whatever else the machine is doing. It is not time: a cache miss costs
one instruction. The collector is off while the requests are counted, so that a
collection falls on no one app.

The count depends on the process's memory layout, which the hash seed changes: the
same code measures several percent apart from one seed to the next, as CPython's type
attribute cache happens to collide or not. Read the mean over the seeds, and compare
the twin, the baseline's code on model classes of its own, with the baseline.

    .venv/bin/python benchmarks/instructions.py [--seeds 6] [--requests 200]
        [--workloads get 404 page] [--apps baseline twin typed-db fsa] [--url URL]

Needs ``valgrind`` on the PATH (Debian's package of that name).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

# Run as a script, this file's directory is on the path, not the project's.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import requests_bench as bench

#: Requests sent to every app before counting: statement caches, pools and lazily
#: built structures are warm.
WARMUP = 100


def run(app_name: str, workload_name: str, url: str, requests: int) -> None:
    """The counted process: warm ``app_name`` up on ``workload_name``, then send it
    ``requests`` more with the collector off.
    """
    app, _ = bench.CONTENDERS[app_name](url)
    workload = next(workload for workload in bench.WORKLOADS if workload.name == workload_name)
    request = bench.Request.build(workload)
    for _ in range(WARMUP):
        request.send(app)
    gc.collect()
    gc.disable()
    for _ in range(requests):
        request.send(app)


def count(app_name: str, workload: str, url: str, requests: int, seed: int) -> int:
    """Instructions the whole counted process ran, for ``seed``."""
    finished = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--run",
            app_name,
            workload,
            str(requests),
        ],
        env={**os.environ, "PYTHONHASHSEED": str(seed), "INSTRUCTIONS_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", finished.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count:\n{finished.stderr}")
    return int(match.group(1))


def per_request(app_name: str, workload: str, url: str, requests: int, seed: int) -> float:
    """Instructions per request of ``app_name`` on ``workload`` for ``seed``."""
    return (
        count(app_name, workload, url, requests, seed) - count(app_name, workload, url, 0, seed)
    ) / requests


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Instructions per request, by Valgrind.")
    parser.add_argument("--seeds", type=int, default=6, help="hash seeds 1 to N")
    parser.add_argument("--requests", type=int, default=200, help="counted per process")
    parser.add_argument("--workloads", nargs="+", default=["get", "404", "page"])
    parser.add_argument("--apps", nargs="+", default=["baseline", "twin", "typed-db", "fsa"])
    parser.add_argument(
        "--url",
        help="a server's database URL (its tables are made and dropped); default: SQLite",
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not on the PATH")
    if "baseline" not in args.apps:
        parser.error("--apps must include baseline: the ratios are to it")
    seeds = range(1, args.seeds + 1)
    with tempfile.TemporaryDirectory() as directory:
        url = args.url or f"sqlite:///{Path(directory) / 'instructions.db'}"
        _, engine = bench.baseline_app(url)
        bench.create_tables(engine, bench.BaselineBase.metadata)
        jobs = [
            (app, workload, seed)
            for workload in args.workloads
            for app in args.apps
            for seed in seeds
        ]

        def measure(job: tuple[str, str, int]) -> float:
            app, workload, seed = job
            return per_request(app, workload, url, args.requests, seed)

        try:
            with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
                results = dict(zip(jobs, pool.map(measure, jobs), strict=True))
        finally:
            bench.BaselineBase.metadata.drop_all(engine)
            engine.dispose()
    backend = sa.make_url(url).get_backend_name()
    print(
        f"Instructions per request (thousands), {backend}, {args.requests} requests, hash seeds"
        f" 1 to {args.seeds}: the mean and, in brackets, the lowest and highest seed; the ratio"
        " of the means to the baseline's, and the lowest and highest per-seed ratio."
    )
    for workload in args.workloads:
        print(f"\n{workload}")
        base = [results["baseline", workload, seed] for seed in seeds]
        for app in args.apps:
            own = [results[app, workload, seed] for seed in seeds]
            ratios = [mine / theirs for mine, theirs in zip(own, base, strict=True)]
            print(
                f"  {app:<10}{statistics.mean(own) / 1000:>9.1f}"
                f" ({min(own) / 1000:.1f}-{max(own) / 1000:.1f})"
                f"{statistics.mean(own) / statistics.mean(base):>9.3f}"
                f" ({min(ratios):.3f}-{max(ratios):.3f})"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run(sys.argv[2], sys.argv[3], os.environ["INSTRUCTIONS_URL"], int(sys.argv[4]))
    else:
        main()
