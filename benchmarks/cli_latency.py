"""Command latency: ``neurodyn --version`` and ``neurodyn simulate`` of the packaged default
model, each as a fresh process (what a user waits for), with JAX's persistent compilation
cache off, cold (empty folder) and warm (filled by the cold run).

    python benchmarks/cli_latency.py [--repeats 3]

Prints the median wall time of each and the ratio cold / warm; the cache folder is a
temporary one, so the user's own cache is not touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def wall(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "neurodyn", *argv], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="neurodyn-latency-")
    out = os.path.join(tmp, "out")
    simulate = ["simulate", "--out", out, "--no-plot"]
    base = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    times: dict[str, list[float]] = {"--version": [], "simulate, cache off": [], "simulate, cold cache": [], "simulate, warm cache": []}
    try:
        for _ in range(args.repeats):  # interleaved, so that load on the machine hits every variant alike
            cache = os.path.join(tmp, "cache")
            shutil.rmtree(cache, ignore_errors=True)
            times["--version"].append(wall(["--version"], base))
            times["simulate, cache off"].append(wall(simulate, {**base, "NEURODYN_CACHE_DIR": "off"}))
            times["simulate, cold cache"].append(wall(simulate, {**base, "NEURODYN_CACHE_DIR": cache}))
            times["simulate, warm cache"].append(wall(simulate, {**base, "NEURODYN_CACHE_DIR": cache}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:<24} {v:6.2f} s (median of {args.repeats}: {', '.join(f'{x:.2f}' for x in times[k])})")
    print(f"warm cache: {med['simulate, cache off'] / med['simulate, warm cache']:.2f}x faster than no cache, "
          f"{med['simulate, cold cache'] / med['simulate, warm cache']:.2f}x faster than the cold run that filled it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
