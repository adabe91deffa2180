#!/usr/bin/env python3
"""Runs two or more model_benchmark binaries alternately, round after round, and prints each
benchmark's minimum and median real time (ms) per binary: the A/B comparison of docs/performance.md
on a host whose speed drifts by tens of percent from minute to minute, where only figures taken
in the same minutes compare. The last column of each binary after the first is the median over
rounds of its time over the first binary's in the same round: the figure least moved by the
drift, as each round's two runs are seconds apart.

  benchmarks/model_benchmark_ab.py ROUNDS FILTER OLD_BINARY NEW_BINARY [...] [--models=M]
  e.g. benchmarks/model_benchmark_ab.py 6 'VerifyStep/.*/256' old/model_benchmark build/benchmarks/model_benchmark
"""
import collections
import json
import statistics
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--models=")]
    models = [a for a in sys.argv[1:] if a.startswith("--models=")] or [
        "--models=models/SmolLM2-135M-Instruct.Q4_1.gguf"]
    if len(args) < 3:
        raise SystemExit(__doc__)
    rounds, pattern, binaries = int(args[0]), args[1], args[2:]
    times = collections.defaultdict(list)
    for _ in range(rounds):
        for binary in binaries:
            out = subprocess.run([binary, *models, "--benchmark_filter=" + pattern,
                                  "--benchmark_format=json", "--benchmark_min_time=0.4"],
                                 capture_output=True, text=True, check=True).stdout
            for bench in json.loads(out)["benchmarks"]:
                scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[bench["time_unit"]]
                name = bench["name"].replace("/real_time", "")
                times[name].append((binary, bench["real_time"] * scale))
    print(f"{'benchmark':<58}" + "".join(
        f"{b[-24:]:>26}" + ("" if i == 0 else f"{'/ first':>9}") for i, b in enumerate(binaries)))
    for name, samples in times.items():
        cells = []
        first = [t for b, t in samples if b == binaries[0]]
        for i, binary in enumerate(binaries):
            mine = [t for b, t in samples if b == binary]
            cells.append(f"{min(mine):12.3f} {statistics.median(mine):12.3f} ")
            if i > 0:
                ratios = [t / f for t, f in zip(mine, first)]
                cells.append(f"{statistics.median(ratios):8.3f} ")
        print(f"{name:<58}" + "".join(cells))


if __name__ == "__main__":
    main()
