#!/usr/bin/env python3
"""benchmarks/serving_profile.sh's buckets: which part of Pagoda each CPU sample belongs to.

  perf script -F pid,ip,sym,dso ... | serving_profile_buckets.py --router-pid R --worker-pid W
      > buckets.json          # sample counts per bucket (and the top symbols of each)
  serving_profile_buckets.py --report OUT_DIR --rate 499 1 16
      # the table: CPU ms per generated token per bucket, beside the wall-clock figures
"""

import argparse
import collections
import json
import re
import sys

LINE = re.compile(r"^\s*(\d+)\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")

# (bucket, process, pattern on "dso symbol"); the first match wins.
RULES = [
    ("model", "worker", re.compile(r"libopenblas|pagoda::kernels|pagoda::ModelRunner::|"
                                   r"pagoda::(models|DecoderBlock|Decoder|Llama|Gemma|Moe)|"
                                   r"pagoda::.*(Forward|Attention|Gemm|RmsNorm|Rotary|Embed)")),
    ("omp", "worker", re.compile(r"libgomp")),
    ("sampler", "worker", re.compile(r"pagoda::(Sampler|.*Sampl|.*Logits|.*Penalt|.*TopK|.*TopP)")),
    ("worker rt", "worker", re.compile(r".")),
    ("frontend", "router", re.compile(r"httplib|nlohmann|pagoda::(HttpServer|.*OpenAi|.*Sse|"
                                      r".*ChatTemplate|.*Jinja|frontend)")),
    ("engine", "router", re.compile(r"pagoda::(Scheduler|KVCacheManager|BlockPool|PlanBuilder|"
                                    r"ContinuousBatching|Preemptor|OutputProcessor|EngineLoop|"
                                    r"StopChecker|.*Detokeni|.*Tokenizer|SequenceRegistry|"
                                    r"BatchingPolicy|Request|NgramProposer|.*Incremental)")),
    ("router rt", "router", re.compile(r".")),
]
BUCKETS = ["model", "omp", "sampler", "worker rt", "engine", "frontend", "router rt"]


def classify(args):
    counts = collections.Counter()
    symbols = collections.defaultdict(collections.Counter)
    process = {args.router_pid: "router", args.worker_pid: "worker"}
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        who = process.get(int(m.group(1)))
        if who is None:
            continue
        dso, sym = m.group(4), m.group(3)
        key = f"{dso} {sym}"
        for bucket, owner, pattern in RULES:
            if owner == who and pattern.search(key):
                counts[bucket] += 1
                symbols[bucket][f"{sym} ({dso.rsplit('/', 1)[-1]})"] += 1
                break
    json.dump({"samples": dict(counts),
               "top": {b: symbols[b].most_common(8) for b in symbols}}, sys.stdout, indent=1)


def metric_sum(path, name):
    total = 0.0
    with open(path) as f:
        for line in f:
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
    return total


def report(args):
    out_dir, streams = args.report, args.streams
    rows = []
    for s in streams:
        run = f"{out_dir}/streams{s}"
        buckets = json.load(open(f"{run}/buckets.json"))
        result = json.load(open(f"{run}/result.json"))
        rate = args.rate
        delta = lambda side, name: (metric_sum(f"{run}/{side}-after.txt", name)
                                    - metric_sum(f"{run}/{side}-before.txt", name))
        tokens = delta("router", "pagoda:generation_tokens_total")
        exec_s = delta("worker", "pagoda_worker:step_latency_seconds_sum")
        exec_n = delta("worker", "pagoda_worker:step_latency_seconds_count")
        cpu_ms = {b: buckets["samples"].get(b, 0) / rate * 1e3 / max(tokens, 1) for b in BUCKETS}
        rows.append((s, tokens, exec_n, exec_s, result, cpu_ms, buckets))
    print(f"\nCPU milliseconds per generated token, by bucket (perf cpu-clock samples at "
          f"{args.rate:.0f} Hz)")
    print(f"{'streams':>7} {'tokens':>7} " + " ".join(f"{b:>9}" for b in BUCKETS) + f" {'total':>7}")
    for s, tokens, _, _, _, cpu_ms, _ in rows:
        print(f"{s:>7} {tokens:>7.0f} " + " ".join(f"{cpu_ms[b]:>9.2f}" for b in BUCKETS)
              + f" {sum(cpu_ms.values()):>7.2f}")
    print("\nWall clock: the client's mean TPOT; the worker's steps (Execute) per token and mean")
    print(f"{'streams':>7} {'mean TPOT ms':>12} {'out tok/s':>9} {'steps':>6} "
          f"{'tokens/step':>11} {'Execute ms/step':>15} {'Execute ms/token':>16}")
    for s, tokens, exec_n, exec_s, result, _, _ in rows:
        print(f"{s:>7} {result['mean_tpot_ms']:>12.1f} {result['output_throughput']:>9.1f} "
              f"{exec_n:>6.0f} {tokens / max(exec_n, 1):>11.2f} "
              f"{exec_s / max(exec_n, 1) * 1e3:>15.2f} {exec_s / max(tokens, 1) * 1e3:>16.2f}")
    for s, _, _, _, _, _, buckets in rows:
        print(f"\nTop symbols at {s} stream(s):")
        for bucket in BUCKETS:
            top = buckets["top"].get(bucket, [])[:4]
            if top:
                print(f"  {bucket}: " + "; ".join(f"{name[:70]} {n}" for name, n in top))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--router-pid", type=int)
    parser.add_argument("--worker-pid", type=int)
    parser.add_argument("--report")
    parser.add_argument("--rate", type=float, default=499.0, help="perf record -F's frequency")
    parser.add_argument("streams", nargs="*")
    args = parser.parse_args()
    if args.report:
        report(args)
    else:
        classify(args)


if __name__ == "__main__":
    main()
